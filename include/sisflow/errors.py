"""Refusals: the reasons a run stops on purpose, one type for each.

A refusal is not a crash. Retrying does not help, so the DAG skips the task at once, without
retries: the run ends green with a note that says why (red means something broke), and the
status email tells the operator why and what to do. Every
refusal carries the outcome its email reports and a message with ids and dates only.
"""

from __future__ import annotations


class Refusal(Exception):
    """A run that stops on purpose: ``outcome`` names the email's story."""

    outcome = "refused"
    #: what the operator can do about it, for the email
    advice = ""

    def as_dict(self) -> dict:
        return {
            "kind": type(self).__name__,
            "outcome": self.outcome,
            "reason": str(self),
            "advice": self.advice,
        }


class InvalidCustomer(Refusal):
    """The customer id is malformed, or its file does not validate."""

    outcome = "invalid-customer"
    advice = "Fix the customer file ('sisflow config check' names the field), then run again."


class RolloverTooEarly(Refusal):
    """Rollover before the earliest allowed date (1 August; Visma Flyt Skole: after the
    school year ended)."""

    outcome = "rollover-too-early"
    advice = "Trigger the rollover again on or after the earliest rollover date."


class FileNotAllowed(Refusal):
    """A file given by hand that lies outside the customer's source folder and landing zone."""

    outcome = "refused"
    advice = (
        "Put the file into the customer's landing zone (or its source folder) and give "
        "its name in the form."
    )


class FileRejected(Refusal):
    """The file cannot be read as a whole (not XML, cut off, no records, ...): nothing staged."""

    outcome = "rejected-file"
    advice = (
        "Ask the SIS supplier for a new export; the reason and the line are above. "
        "Nothing was imported."
    )


class CustomerBusy(Refusal):
    """Another run of the same customer holds its lease."""

    outcome = "busy"
    advice = (
        "Nothing was done. Wait for the other run to end (or decide its held import), "
        "then run again; the next scheduled import picks the file up."
    )


class LeaseLost(Refusal):
    """The run's lease on the customer expired and another run took it over."""

    outcome = "busy"
    advice = "Another run took the customer over; its status email tells what it did."


class NotDecidable(Refusal):
    """A decision on a run that is not held (passed, superseded, already committed, ...)."""

    outcome = "refused"


class ContradictingDecision(Refusal):
    """A decision that contradicts the one stored for the run: never ignored, never applied."""

    outcome = "contradicting-decision"
    advice = (
        "Nothing was applied. Find out which decision is right; the stored one stands "
        "until the run is superseded by the next file."
    )


class RunSuperseded(Refusal):
    """The run is no longer the customer's newest: a newer file or run replaced it."""

    outcome = "superseded"
    advice = "Nothing to do: the newer run carries the customer forward."


class WrongSchoolYear(Refusal):
    """A rollover into a school year that is not after the active one (or not a school year)."""

    outcome = "refused"
    advice = (
        "Give the school year to roll over into (e.g. 2026-2027); it must come after the "
        "customer's active school year."
    )


class BlockedByReadiness(Refusal):
    """Rollover stopped by blocking readiness findings that the operator did not override."""

    outcome = "not-ready"
    advice = (
        "Nothing was applied and the school year was not switched. Resolve the blocking "
        "findings (attach sync keys: 'sisflow readiness attach CUSTOMER --from-csv "
        "FILE'), or trigger the rollover again with 'override' set once they are checked."
    )


class UndoRefused(Refusal):
    """An undo that cannot be done as asked (a dry run, a run that applied nothing, a journal
    pruned, a later run in progress): nothing was changed."""

    outcome = "undo-refused"


class UndoNeedsForce(UndoRefused):
    """A rollover undone after its window: it would take back a school year that later runs
    built on. The message says what it would do; ``--force`` does it."""

    advice = "Read what the undo would do (--dry-run), then add --force to do it."
    #: what the forced undo would do, in lines (see :meth:`sisflow.undo.run.UndoResult.lines`)
    would: list[str] = []
