"""The top-level records of an export as bytes, without building an XML tree.

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
invalid UTF-8 (in a record when it is read: a record taken as unchanged by its digest has the
bytes of one read before).

On a day's run, most lines are records the reader takes as unchanged by their digests
(:mod:`.digests`): while the lines are whole records, the scan goes line by line, and a line
taken is passed over (no regular expression, nothing given to the reader).

A record's end is the first end tag of its name. Where that cuts a record wrongly (an end tag
inside a comment, or a nested element of the same name), the piece is not well-formed, and the
reader's lxml parse of it fails: that too stops the scan.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Iterator

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
_LOOKAHEAD = 1 << 16  # bytes kept ahead of the position before reading more
#: the most one top-level record (or the space between two) may hold, in bytes:
#: a group's <membership> with tens of thousands of members fits, and memory stays bounded
#: whatever a file holds (a record's text, its copies and lxml's tree of it)
MAX_RECORD = 32 << 20

_PROLOG = re.compile(
    rb"(?:\xef\xbb\xbf)?"
    rb"(?:<\?xml\s+version\s*=\s*([\"'])1\.\d+\1"
    rb"(?:\s+encoding\s*=\s*([\"'])[Uu][Tt][Ff]-?8\2)?"
    rb"(?:\s+standalone\s*=\s*([\"'])(?:yes|no)\3)?\s*\?>)?"
    rb"(?:\s|<!--(?:[^-]|-[^-])*-->)*"
    rb"(<enterprise(?:\s[^<>]*)?>)"
)
#: white space and comments between records (a comment may not hold "--")
_GAP = re.compile(rb"(?:\s|<!--(?:[^-]|-[^-])*-->)*")
_RECORD = re.compile(rb"<(person|group|membership|properties)(?=[\s>/])")
_END = re.compile(rb"</enterprise\s*>")
_KINDS = {k.encode(): k for k in ("person", "group", "membership", "properties")}
_CLOSE = {k.encode(): f"</{k}>".encode() for k in _KINDS.values()}
#: the control characters XML forbids, as bytes (the same in UTF-8)
_FORBIDDEN = bytes(range(9)) + b"\x0b\x0c" + bytes(range(14, 32))
_WHITE = b" \t\r\n"  # XML's white space
#: U+FFFE and U+FFFF in UTF-8: characters XML forbids
_NONCHARACTERS = (b"\xef\xbf\xbe", b"\xef\xbf\xbf")


def _unsure(piece: bytes) -> bool:
    """A control character XML forbids, a carriage return that does not end a line, "]]>",
    or U+FFFE or U+FFFF, in a whole record or space between records. Byte operations in C,
    each a single byte looked for first where it can be: rare in text, and found the fastest
    way."""
    if len(piece.translate(None, _FORBIDDEN)) != len(piece):
        return True
    if b"]" in piece and b"]]>" in piece:
        return True
    if b"\xef" in piece and (_NONCHARACTERS[0] in piece or _NONCHARACTERS[1] in piece):
        return True
    return b"\r" in piece and piece.count(b"\r") != piece.count(b"\r\n")


def _record_end(data: bytes, start: int, kind: bytes) -> int:
    """Where the record starting at ``start`` ends (-1: not in ``data``): after its first
    end tag, or after its start tag when that closes itself (if no ">" is in a value;
    otherwise the record's text is not well-formed and lxml says so)."""
    tag_end = data.find(b">", start)
    if tag_end < 0:
        return -1
    if data[tag_end - 1] == 0x2F:  # "/"
        return tag_end + 1
    close = _CLOSE[kind]
    end = data.find(close, tag_end)
    return end if end < 0 else end + len(close)


def text_of(data: bytes, line: int) -> str:
    """A record's bytes (or the space between two) as text, when lxml would read them the
    same way; Unscannable when not, or not UTF-8. A record taken by its digest is not looked
    at: it has the bytes of one that passed here before."""
    if _unsure(data):
        raise Unscannable(f"line {line}: a character or sequence lxml may read otherwise")
    try:
        return data.decode()
    except UnicodeDecodeError as err:
        raise Unscannable(f"line {line}: not UTF-8: {err.reason}") from None


#: what the scan gives: a record's kind, its first line and its bytes
Scanned = tuple[str, int, bytes]


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
    """Iterate over ``(kind, line, data)`` of the top-level records of an open binary file
    (``read(n)`` only): a record's bytes as written, which :func:`text_of` turns into text
    (a record taken by its digest never is). ``root_tag`` is the ``<enterprise ...>`` start
    tag, for parsing a record's text in the same namespace context.

    Bytes, not text: a day's run reads few of the file's records, and only those and the
    space between records (where it is more than a line break) are decoded and checked."""

    def __init__(self, raw, take: Callable[[bytes, int], bool] | None = None):
        """``take(line, number)``: whether a line is a record taken as unchanged (by its
        digest), which is then not given; see :meth:`_lines`."""
        self._raw = raw
        self._take = take
        self._eof = False
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

    def _more(self, data: bytes, pos: int) -> bytes:
        """The bytes from ``pos`` with the next chunk of the file added."""
        new = self._raw.read(_CHUNK)
        self._eof = not new
        return data[pos:] + new

    def __iter__(self) -> Iterator[Scanned]:
        data = self._more(b"", 0)
        while not self._eof and len(data) < _LOOKAHEAD:
            data = self._more(data, 0)
        prolog = _PROLOG.match(data)
        if prolog is None:
            raise Unscannable("the prolog or the root start tag")
        text_of(data[: prolog.start(4)], 1)
        self.root_tag = re.sub(r"\s", " ", text_of(prolog.group(4), 1))
        line = 1 + data.count(b"\n", 0, prolog.end())
        pos = prolog.end()
        while True:
            if len(data) - pos < _LOOKAHEAD and not self._eof:
                data, pos = self._more(data, pos), 0
            if self._take is not None and data.startswith(b"\n", pos):
                pos, line = yield from self._lines(data, pos, line)
                if len(data) - pos < _LOOKAHEAD and not self._eof:
                    continue
            # the usual space between records first: a line break
            found = _RECORD.match(data, pos + 1) if data.startswith(b"\n", pos) else None
            if found is not None:
                start = pos + 1
            else:
                gap = _GAP.match(data, pos)
                assert gap is not None  # white space or nothing: it always matches
                start = gap.end()
                text_of(data[pos:start], line)
                found = _RECORD.match(data, start)
            if found is None:
                ended = _END.match(data, start)
                if ended:
                    self._finish(data, ended.end())
                    return
                raise Unscannable(f"line {line}: something between records")
            kind = found.group(1)
            end = _record_end(data, start, kind)
            while end < 0:
                if self._eof:
                    raise Unscannable(f"line {line}: a record cut short")
                if len(data) - start > MAX_RECORD:
                    raise TooLarge(line + data.count(b"\n", pos, start), f"a <{_KINDS[kind]}>")
                data, pos, start = self._more(data, pos), 0, start - pos
                end = _record_end(data, start, kind)
            line += data.count(b"\n", pos, start)
            record = data[start:end]
            yield _KINDS[kind], line, record
            line += record.count(b"\n")
            pos = end

    def _lines(self, data: bytes, pos: int, line: int) -> Generator[Scanned, None, tuple[int, int]]:
        """From the line break at ``pos`` (ending line ``line``), the whole lines that follow
        it in ``data``, while each is one record: a line ``take`` takes is passed over
        without a look at its bytes, the others are given. Where a line is anything else
        (a record over several lines, a comment, the end), the position and line of the
        line break before it are returned, and the record by record scan reads on from
        there. A line the reader takes has the bytes of a record read before, so it is that
        record, whole, of the same kind and end, with the usual line break after it."""
        take, at = self._take, pos + 1
        assert take is not None
        while (end := data.find(b"\n", at)) >= 0:
            piece = data[at:end]
            if not take(piece, line + 1):
                found = _RECORD.match(piece)
                if found is None or _record_end(piece, 0, found.group(1)) != len(piece):
                    break
                yield _KINDS[found.group(1)], line + 1, piece
            line, at = line + 1, end + 1
        return at - 1, line

    def _finish(self, data: bytes, pos: int) -> None:
        """After ``</enterprise>``: white space and comments to the end of the file. White
        space is let go as it is read, so memory stays flat however much of it follows (only
        XML's: a form feed is a character XML forbids, which :func:`text_of` finds)."""
        rest = data[pos:].strip(_WHITE)
        while not self._eof:
            rest = self._more(rest, 0).strip(_WHITE)
            if len(rest) > _LOOKAHEAD:
                raise Unscannable("something after </enterprise>")
        gap = _GAP.match(rest)
        if gap is None or gap.end() < len(rest):
            raise Unscannable("something after </enterprise>")
        text_of(rest, 0)
