"""What a record's values may be (ids, names, dates, types), and the file's bytes as they are
read: hashed, counted, and checked against the encoding the file declares."""

from __future__ import annotations

import hashlib
import queue
import re
import threading
from datetime import date

from lxml import etree

from .records import FILE_TYPES
from .scan import MAX_RECORD, TooLarge

_ROLETYPE_ALIASES = {str(i): f"{i:02d}" for i in range(1, 9)}  # "1" -> "01", seen in the wild


_LOCAL_NAMES: dict[str, str] = {}


def _local(tag) -> str:
    """The tag without its namespace. Cached: a file uses a handful of tags a million times."""
    try:
        return _LOCAL_NAMES[tag]
    except (KeyError, TypeError):
        if not isinstance(tag, str):
            return ""  # an unresolved entity reference or similar node
        name = _LOCAL_NAMES[tag] = tag[tag.rfind("}") + 1 :]
        return name


def _text(el) -> str | None:
    if len(el):  # a value holds text only; an entity reference is a node of its own
        _no_entities(el)
    t = el.text
    if t is None:
        return None
    t = t.strip()
    return t or None


class EntityInValue(ValueError):
    """An entity reference in a value: never resolved, so the value cannot be read."""


def _no_entities(el) -> None:
    for child in el:
        if child.tag is etree.Entity:
            raise EntityInValue(f"entity reference {child.text} in <{_local(el.tag)}>")


def _check_date(value: str | None) -> str | None:
    """An ISO date (xs:date, optionally with time zone or time) -> 'YYYY-MM-DD'; ValueError else."""
    if value is None:
        return None
    day = date.fromisoformat(value[:10])
    if len(value) > 10 and value[10] not in "TZ+-":
        raise ValueError(value)
    return day.isoformat()


#: declarations of a one-byte encoding, whose files must not hold UTF-8 sequences
_SINGLE_BYTE = {
    "iso-8859-1",
    "iso8859-1",
    "latin1",
    "latin-1",
    "iso-8859-15",
    "windows-1252",
    "cp1252",
}
_DECLARATION = re.compile(rb"""^(?:\xef\xbb\xbf)?<\?xml[^>]*encoding\s*=\s*["']([^"']+)["']""")
#: a valid multi-byte UTF-8 sequence: in text declared ISO-8859-1 it reads as "Ã¸" and the like
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}"
    rb"|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)


#: words other systems write into IMS Enterprise 1.1's free-text properties/type
_FULL_WORDS = ("snapshot", "full", "complete")
_DELTA_WORDS = ("update", "increment", "delta", "change")


def file_type_of(text: str | None) -> str | None:
    """full, delta or event from properties/type as written ("Snapshot", "DATABASE UPDATE",
    "DB Increment", ...); None when the text says none of them."""
    word = (text or "").strip().lower()
    if word in FILE_TYPES:
        return word
    if not word:
        return None
    if "event" in word:
        return "event"
    if any(w in word for w in _FULL_WORDS):
        return "full"
    if any(w in word for w in _DELTA_WORDS):
        return "delta"
    return None


class _Sha256Behind:
    """SHA-256 of the bytes given, computed on a thread of its own while the reader goes on:
    hashlib lets go of the interpreter for a chunk of a file, so hashing a large export costs
    the reader nothing on a machine of two cores or more. A few chunks are held at most."""

    def __init__(self):
        self._hash = hashlib.sha256()
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self._thread: threading.Thread | None = None
        self._digest: str | None = None

    def update(self, data: bytes) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sha256", daemon=True)
            self._thread.start()
        self._chunks.put(data)

    def _run(self) -> None:
        while (data := self._chunks.get()) is not None:
            self._hash.update(data)

    def hexdigest(self) -> str:
        """The digest of everything given; nothing may be given after."""
        if self._digest is None:
            if self._thread is not None:
                self._chunks.put(None)
                self._thread.join()
            self._digest = self._hash.hexdigest()
        return self._digest


class _HashingReader:
    """A binary file that hashes and counts what passes through it, so one pass does both;
    for a file declared in a one-byte encoding it also finds the first UTF-8 sequence
    (``utf8_line``): bytes that contradict the declaration."""

    def __init__(self, f):
        self._f = f
        self.sha256 = _Sha256Behind()
        self.size = 0
        self.declared: str | None = None
        self.utf8_line: int | None = None
        self._single_byte = False
        self._lines = 1
        self._tail = b""
        #: where the last record ended: lxml may read at most MAX_RECORD bytes past it (one
        #: record, or the space between two), so its tree stays bounded whatever the file holds
        self.record_end: int | None = None

    def read(self, n: int = -1) -> bytes:
        if self.record_end is not None and self.size - self.record_end > MAX_RECORD:
            self.record_end = None  # said once: lxml may read on as it unwinds
            raise TooLarge(None, "a record, or the space after the last one,")
        data = self._f.read(n)
        if self.size == 0 and data:
            found = _DECLARATION.match(data[:200])
            self.declared = found.group(1).decode("ascii", "replace").lower() if found else None
            self._single_byte = self.declared in _SINGLE_BYTE
        if self._single_byte and self.utf8_line is None:
            window = self._tail + data
            hit = _UTF8_SEQUENCE.search(window)
            if hit:
                self.utf8_line = (
                    self._lines + window.count(b"\n", 0, hit.start()) - self._tail.count(b"\n")
                )
            else:
                self._lines += data.count(b"\n")
                self._tail = data[-3:]
        self.sha256.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        self.record_end = None  # only hashed, never held
        while self.read(1 << 20):
            pass


#: the longest id taken: an index entry of the import database holds two ids of at most four
#: bytes a character comfortably; real ids are far shorter
MAX_ID = 255
#: the longest name, email, user id or group title taken: what LMSs hold in such a field (a
#: longer one would be cut or refused there, one record at a time)
MAX_VALUE = 255


def _too_long(values: dict) -> str | None:
    """The first value over :data:`MAX_VALUE`, as a record's problem."""
    for name, value in values.items():
        if value is not None and len(value) > MAX_VALUE:
            return f"{name} of {len(value)} characters is longer than the LMS takes ({MAX_VALUE})"
    return None


def _check_id(value: str) -> None:
    if len(value) > MAX_ID:
        raise _BadRecord(
            f"id of {len(value)} characters is longer than {MAX_ID}",
            f"{value[:40]}...",
            identified=False,
        )


class _BadRecord(Exception):
    """``identified``: False when the record's own key cannot be read (missing, empty, too
    long): ``record_id`` is then only something to show."""

    def __init__(self, reason: str, record_id: str | None = None, *, identified: bool = True):
        super().__init__(reason)
        self.reason, self.record_id, self.identified = reason, record_id, identified
