-- The journal: every change a run made to the LMS, with what was there before, written in the
-- same transaction as the change. An object (user, unit, term, course) has its row as it was
-- before (NULL: the run created it) and after; the members of one course or unit that one
-- statement changed share a row (who, in which role, from which state to which: absent,
-- synced or manual), so a rollover's million participants are a few thousand rows. Undo reads
-- it backwards; a change to the object since (by a later run or by hand) is a conflict.
CREATE TABLE sis.lms_journal (
    id            bigserial PRIMARY KEY,   -- the order of the changes
    run_id        bigint NOT NULL,
    customer      text NOT NULL,
    kind          text NOT NULL
                  CHECK (kind IN ('user', 'unit', 'term', 'course', 'participant', 'unit_member')),
    object_id     bigint NOT NULL,         -- the LMS id; of the course or unit for members
    sync_key      text,
    before        jsonb,
    after         jsonb,
    user_ids      bigint[],
    roles         text[],
    member_before text CHECK (member_before IN ('absent', 'synced', 'manual')),
    member_after  text CHECK (member_after IN ('absent', 'synced', 'manual'))
);
CREATE INDEX lms_journal_run ON sis.lms_journal (run_id);
CREATE INDEX lms_journal_object ON sis.lms_journal (customer, kind, object_id);

-- An update in a change set keeps the record's values before the run (set when the run is
-- committed): undo puts them back into the current state.
ALTER TABLE sis.person_changes ADD COLUMN before jsonb;
ALTER TABLE sis.group_changes ADD COLUMN before jsonb;
ALTER TABLE sis.membership_changes ADD COLUMN before jsonb;

-- An undo is a run of its own: committed, journaled, emailed and itself undoable.
ALTER TABLE sis.runs ADD COLUMN undo_of bigint;
CREATE TABLE sis.undos (
    run_id     bigint PRIMARY KEY REFERENCES sis.runs (id) ON DELETE CASCADE,
    undone_run bigint NOT NULL,
    school     text,                 -- the school unit's sync key, when limited to one
    decided_by text NOT NULL,
    via        text NOT NULL CHECK (via IN ('cli', 'airflow')),
    reason     text NOT NULL,
    forced     boolean NOT NULL DEFAULT false,
    decided_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX undos_undone ON sis.undos (undone_run);

-- What an undo left alone: changed since (conflict) or in use since (kept).
ALTER TABLE sis.apply_outcomes DROP CONSTRAINT apply_outcomes_outcome_check;
ALTER TABLE sis.apply_outcomes ADD CONSTRAINT apply_outcomes_outcome_check
    CHECK (outcome IN ('deferred', 'skipped', 'failed', 'conflict', 'kept'));
