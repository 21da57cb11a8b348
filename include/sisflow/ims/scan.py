"""The top-level records of an export as text, without building an XML tree.

Nearly every export is UTF-8 with one record per line: the prolog, ``<enterprise>``, then
``<properties>``, ``<person>``, ``<group>`` and ``<membership>`` elements separated by line
breaks. For such a file, finding each record's text and line costs a fraction of lxml's parse:
the reader recognises plain records in that text and hands lxml only the others, one at a
time.

What this module gives must be exactly what lxml would have read, so anything it is not sure
of stops it (:class:`Unscannable`) and the reader reads the whole file with lxml instead, which
also says what is wrong. It is not sure of: another encoding, a DOCTYPE, a namespace prefix on
the root, a character XML forbids, a lone carriage return (lines would be counted otherwise),
``]]>`` (a CDATA section, or text lxml rejects), anything but white space and comments between
records, anything after ``</enterprise>`` but those, a record cut short by the end of the file,
invalid UTF-8.

A record's end is the first end tag of its name. Where that cuts a record wrongly (an end tag
inside a comment, or a nested element of the same name), the piece is not well-formed, and the
reader's lxml parse of it fails: that too stops the scan.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator

from lxml import etree

#: how lxml reads an export, whole or one record at a time: no DTD, no entity resolved, no
#: network; comments and processing instructions dropped
LXML_OPTIONS = {
    "load_dtd": False,
    "no_network": True,
    "resolve_entities": False,
    "remove_comments": True,
    "remove_pis": True,
    "huge_tree": True,
}
#: bytes read at a time: three copies of a chunk are alive at once, and 4 MB read no faster
_CHUNK = 1 << 20
_LOOKAHEAD = 1 << 16  # characters kept ahead of the position before reading more
#: the most one top-level record (or the space between two) may hold, in characters or bytes:
#: a group's <membership> with tens of thousands of members fits, and memory stays bounded
#: whatever a file holds (a record's text, its copies and lxml's tree of it)
MAX_RECORD = 32 << 20

_PROLOG = re.compile(
    r"\ufeff?"
    r"(?:<\?xml\s+version\s*=\s*([\"'])1\.\d+\1"
    r"(?:\s+encoding\s*=\s*([\"'])[Uu][Tt][Ff]-?8\2)?"
    r"(?:\s+standalone\s*=\s*([\"'])(?:yes|no)\3)?\s*\?>)?"
    r"(?:\s|<!--(?:[^-]|-[^-])*-->)*"
    r"(<enterprise(?:\s[^<>]*)?>)"
)
#: white space and comments between records (a comment may not hold "--")
_GAP = re.compile(r"(?:\s|<!--(?:[^-]|-[^-])*-->)*")
_RECORD = re.compile(r"<(person|group|membership|properties)(?=[\s>/])")
_END = re.compile(r"</enterprise\s*>")
#: the control characters XML forbids, as bytes (the same in UTF-8)
_FORBIDDEN = bytes(range(9)) + b"\x0b\x0c" + bytes(range(14, 32))


def _unsure(window: bytes) -> bool:
    """A control character XML forbids, a carriage return that does not end a line (a
    last one is looked at with the next chunk), or "]]>". Byte operations in C: a regular
    expression over the whole file would cost more than the rest of the scan."""
    if len(window.translate(None, _FORBIDDEN)) != len(window) or b"]]>" in window:
        return True
    returns = window.count(b"\r")
    return bool(returns) and returns != window.count(b"\r\n") + window.endswith(b"\r")


def _record_end(text: str, start: int, kind: str) -> int:
    """Where the record starting at ``start`` ends (-1: not in ``text``): after its first
    end tag, or after its start tag when that closes itself (if no ">" is in a value;
    otherwise the record's text is not well-formed and lxml says so)."""
    tag_end = text.find(">", start)
    if tag_end < 0:
        return -1
    if text[tag_end - 1] == "/":
        return tag_end + 1
    close = f"</{kind}>"
    end = text.find(close, tag_end)
    return end if end < 0 else end + len(close)


class Unscannable(Exception):
    """The file is not of the simple shape this module reads: read it with lxml."""


class TooLarge(Exception):
    """A record, or the space between two, longer than :data:`MAX_RECORD`: the file is
    refused whole (no reader could hold it in bounded memory)."""

    def __init__(self, line: int | None, what: str):
        super().__init__(
            f"{what} is longer than {MAX_RECORD >> 20} MB: a file of this shape is"
            " not read (ask the SIS supplier for an export without it)"
        )
        self.line = line


class Scanner:
    """Iterate over ``(kind, line, text)`` of the top-level records of an open binary file
    (``read(n)`` only). ``root_tag`` is the ``<enterprise ...>`` start tag, for parsing a
    record's text in the same namespace context."""

    def __init__(self, raw):
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._eof = False
        self._tail = b""  # the end of the last chunk, for a sequence split between two
        self.root_tag = ""
        # a parser of its own: lxml's parsers are not to be shared between threads
        self._parser = etree.XMLParser(**LXML_OPTIONS)

    def parse(self, text: str, line: int):
        """A record's text (from ``line``) parsed by lxml in the root's namespace context: its
        element, whose lines count from 1. Unscannable when lxml cannot parse it alone or it
        is not one element."""
        try:
            root = etree.fromstring(f"{self.root_tag}{text}</enterprise>", self._parser)
        except etree.XMLSyntaxError as err:
            raise Unscannable(f"line {line}: {err.msg}") from None
        if len(root) != 1 or (root.text or "").strip() or (root[0].tail or "").strip():
            raise Unscannable(f"line {line}: not one element")
        return root[0]

    def _more(self, text: str, pos: int) -> str:
        """The text from ``pos`` with the next chunk of the file added."""
        data = self._raw.read(_CHUNK)
        self._eof = not data
        if _unsure(self._tail + data):
            raise Unscannable("a character or sequence lxml may read otherwise")
        self._tail = data[-2:]
        try:
            new = self._decoder.decode(data, final=self._eof)
        except UnicodeDecodeError as err:
            raise Unscannable(f"not UTF-8: {err.reason}") from None
        if "\ufffe" in new or "\uffff" in new:  # free in text of Latin letters only
            raise Unscannable("a character XML forbids")
        return text[pos:] + new

    def __iter__(self) -> Iterator[tuple[str, int, str]]:
        text = self._more("", 0)
        while not self._eof and len(text) < _LOOKAHEAD:
            text = self._more(text, 0)
        prolog = _PROLOG.match(text)
        if prolog is None:
            raise Unscannable("the prolog or the root start tag")
        self.root_tag = re.sub(r"\s", " ", prolog.group(4))
        line = 1 + text.count("\n", 0, prolog.end())
        pos = prolog.end()
        while True:
            if len(text) - pos < _LOOKAHEAD and not self._eof:
                text, pos = self._more(text, pos), 0
            gap = _GAP.match(text, pos)
            assert gap is not None  # white space or nothing: it always matches
            found = _RECORD.match(text, gap.end())
            if found is None:
                ended = _END.match(text, gap.end())
                if ended:
                    self._finish(text, ended.end())
                    return
                raise Unscannable(f"line {line}: something between records")
            kind = found.group(1)
            start = found.start()
            end = _record_end(text, start, kind)
            while end < 0:
                if self._eof:
                    raise Unscannable(f"line {line}: a record cut short")
                if len(text) - start > MAX_RECORD:
                    raise TooLarge(line + text.count("\n", pos, start), f"a <{kind}>")
                text, pos, start = self._more(text, pos), 0, start - pos
                end = _record_end(text, start, kind)
            line += text.count("\n", pos, start)
            record = text[start:end]
            yield kind, line, record
            line += record.count("\n")
            pos = end

    def _finish(self, text: str, pos: int) -> None:
        """After ``</enterprise>``: white space and comments to the end of the file. White
        space is let go as it is read, so memory stays flat however much of it follows."""
        rest = text[pos:].strip()
        while not self._eof:
            rest = self._more(rest, 0).strip()
            if len(rest) > _LOOKAHEAD:
                raise Unscannable("something after </enterprise>")
        gap = _GAP.match(rest)
        if gap is None or gap.end() < len(rest):
            raise Unscannable("something after </enterprise>")
