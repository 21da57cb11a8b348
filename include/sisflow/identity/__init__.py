"""Identity changes: one person or group under a new sync key.

SIS vendors rebuild ids (a pupil changes school or gets a national id, a municipality changes
SIS): a key leaves and another arrives for the same person. Taken at face value that trashes an
account and creates a second one, and archives a course to create an empty one. Here the two
keys are paired on independent evidence (:mod:`.pairs`), each pair is decided once per customer
by the rule or by a person (:mod:`.decisions`), and an accepted pair turns the delete and the
create into one update of the same LMS object under the new key (:mod:`.changes`). Every
relink is recorded and can be undone (:mod:`.undo`).
"""

from .changes import rename_in_state, rewrite
from .decisions import Pair, decide, find_in_run, listed, undecided, undone_since
from .undo import undo

__all__ = [
    "Pair",
    "decide",
    "find_in_run",
    "listed",
    "rename_in_state",
    "rewrite",
    "undecided",
    "undo",
    "undone_since",
]
