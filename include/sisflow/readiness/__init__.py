"""Year-end readiness: what must be put right before a customer rolls over to a new school
year, and the sync keys an operator attaches to manual accounts so that rollover does not
create a second account for the same person.

:func:`check` runs the checks (:mod:`.checks`) against the SIS data (:mod:`.people`);
:mod:`.attach` records and undoes attached sync keys.
"""

from .checks import LISTS, Findings, check
from .people import SisData, file_people, staged_people, state_people
from .run import readiness, send

__all__ = [
    "LISTS",
    "Findings",
    "SisData",
    "check",
    "file_people",
    "readiness",
    "send",
    "staged_people",
    "state_people",
]
