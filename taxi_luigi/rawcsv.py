"""A raw TLC csv or csv.gz, read apart from DuckDB: its header, its dialect, and what its bytes count.

Clean lets DuckDB parse a month (fast, on every core) and checks what DuckDB read against counts
taken here, in one pass over the same bytes: the lines after the header and the field separators on
them. For a csv.gz that pass also unpacks it, into the plain text DuckDB then parses. The TLC's own
files bend the CSV grammar (research: real-samples/SOURCES.md): a header ended by LF before CRLF
rows, a blank line after it, a last line ended by LF alone, two empty fields past the header on every
row. The counts are what lets Clean read such files leniently and still know that no row was split,
merged or cut short; where they disagree, Clean reads a copy with one line ending.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import itertools
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from isal import igzip, isal_zlib

CHUNK = 1 << 20
HEADER_BYTES = 1 << 16  # the TLC's headers are a few hundred bytes
SNIFF_BYTES = 1 << 20  # the first rows, for the fields past the header
_LF, _CR, _COMMA, _QUOTE = b'\n\r,"'
MAX_EXTRA = 16  # empty fields past the header worth a column of their own; more are left to the exact read


class DamagedSource(Exception):
    """The raw file turned out unreadable past its header: download it again."""


class HeaderError(Exception):
    """The first line cannot be read as a CSV header."""


def header(path: Path, fmt: str) -> list[str]:
    """The column names on the first line, stripped of the spaces some years put around them.

    At most HEADER_BYTES of it: a file without line breaks (or lone CRs only) is not read whole.
    """
    try:
        with gzip.open(path, "rb") if fmt == ".csv.gz" else open(path, "rb") as f:
            line = f.readline(HEADER_BYTES).decode("utf-8-sig", errors="replace").strip("\r\n")
        columns = next(csv.reader(io.StringIO(line), strict=True), [])  # DuckDB reads no row after a stray quote
    except (EOFError, gzip.BadGzipFile, zlib.error, csv.Error) as e:
        raise HeaderError(str(e)) from None
    if not line.strip():
        raise HeaderError("the first line is empty")
    return [c.strip() for c in columns]


@dataclass(frozen=True)
class Dialect:
    """What the first rows say of the file: its columns, the empty fields rows carry past them, and the
    columns that hold only numbers (or nothing) there."""

    columns: list[str]
    extra: int  # e.g. 2 for green 2013-2015, whose rows end in ",,"
    numeric: frozenset[str]


def dialect(path: Path, fmt: str) -> Dialect:
    """The header, and how many empty fields past it the first rows carry (at most MAX_EXTRA)."""
    columns = header(path, fmt)
    head = b""
    for chunk in text_chunks(path, fmt):  # a damaged gzip in the first rows is a DamagedSource
        head += chunk
        if len(head) > SNIFF_BYTES:
            break
    lines = head[:SNIFF_BYTES].split(b"\n")[1:]
    if len(head) > SNIFF_BYTES:
        lines = lines[:-1]  # cut by the sniff's end
    extra = 0
    texts: set[int] = set()
    for line in lines:
        try:
            fields = next(csv.reader([line.rstrip(b"\r").decode("utf-8", errors="replace")], strict=True), [])
        except csv.Error:
            continue
        past = fields[len(columns) :]
        if past and not any(past):
            extra = max(extra, len(past))
        texts.update(i for i, value in enumerate(fields[: len(columns)]) if value.strip() and not _is_number(value))
    numeric = frozenset(name for i, name in enumerate(columns) if i not in texts)
    return Dialect(columns, min(extra, MAX_EXTRA), numeric)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def text_chunks(path: Path, fmt: str) -> Iterator[bytearray]:
    """The file's text CHUNK bytes at a time; a csv.gz is unpacked, member after member, its CRC checked.

    ISA-L unpacks a yellow month's 196 MB in 0.7 s of CPU, where zlib takes 2.2 s: Clean unpacks a
    csv.gz once, and waits for it. The chunks are two buffers in turn, so a chunk is overwritten two
    chunks on: a new object per chunk is fresh memory, faulted in page by page (the yellow month:
    200,000 faults, 0.7 s of system time). Raises DamagedSource for a damaged or truncated gzip: the
    download is bad, not the data.
    """
    try:
        with igzip.open(path, "rb") if fmt == ".csv.gz" else open(path, "rb") as f:
            buffers = (bytearray(CHUNK), bytearray(CHUNK))
            for turn in itertools.count():
                buffer = buffers[turn % 2]
                if not (n := f.readinto(buffer)):
                    return
                yield buffer if n == CHUNK else buffer[:n]
    except EOFError:
        raise DamagedSource(
            f"{path.name} is a damaged or truncated gzip (the file ends inside the compressed stream)."
        ) from None
    except (gzip.BadGzipFile, isal_zlib.error) as e:  # type: ignore[misc]  # isal's stubs declare an instance
        raise DamagedSource(f"{path.name} is a damaged or truncated gzip ({e}).") from None


@dataclass(frozen=True)
class Tally:
    """Counts of the lines after the header, taken on the bytes, not by a CSV parser."""

    lines: int  # every line after the header, blank ones too; a last line without a line break counts
    blank: int  # lines that are empty or a lone CR (DuckDB skips them); exact unless blank lines touch
    commas: int  # field separators after the header: a row of n fields has n - 1, outside quotes
    quotes: int  # quote characters after the header: with none, every comma is a separator

    @property
    def rows(self) -> int:
        return self.lines - self.blank


class _Counter:
    """The running counts of ``tally``, a chunk at a time."""

    def __init__(self) -> None:
        self.lines = self.commas = self.quotes = self.blank = 0
        self.header: tuple[int, int] | None = None  # the header's commas and quotes
        self.last = b""
        self.mask = np.empty(CHUNK, np.bool_)

    def add(self, chunk: bytearray) -> None:
        if not chunk:
            return
        if self.header is None:
            end = chunk.find(b"\n")
            end = end if end >= 0 else len(chunk)
            self.header = (chunk.count(b",", 0, end), chunk.count(b'"', 0, end))
        text = np.frombuffer(chunk, np.uint8)
        # Blank lines from the gaps between line breaks: a pass over the few breaks, not over every byte.
        mask = self.mask[: len(text)]  # one buffer for every comparison: no fresh memory per chunk
        breaks = np.flatnonzero(np.equal(text, _LF, out=mask))
        gaps = np.diff(breaks)
        self.lines += len(breaks)
        self.blank += int(np.count_nonzero(gaps == 1))  # \n\n
        self.blank += int(np.count_nonzero(text[breaks[:-1][gaps == 2] + 1] == _CR))  # \n\r\n
        self.commas += int(np.count_nonzero(np.equal(text, _COMMA, out=mask)))
        if chunk.find(b'"') >= 0:  # most files hold no quote: memchr finds that in a fifth of the time
            self.quotes += int(np.count_nonzero(np.equal(text, _QUOTE, out=mask)))
        self.last = bytes(chunk[-2:])

    def tally(self) -> Tally:
        last = self.last
        unterminated = bool(last) and not last.endswith(b"\n") and last != b"\r"  # rough: a lone "\r" ends nothing
        total = self.lines + unterminated  # the header included
        commas, quotes = self.header or (0, 0)
        return Tally(max(total - 1, 0), self.blank, self.commas - commas, self.quotes - quotes)


def tally(path: Path, fmt: str, text_to: Path | None = None) -> Tally:
    """One pass over the text, counted with numpy (a third of the CPU of bytes.count); with ``text_to``,
    the text is also written there, so that a csv.gz is unpacked once for the count and the parse.

    A thread counts each chunk while the next is unpacked and written. Blank lines are found between
    line breaks one or two bytes apart (``\n\n``, ``\n\r\n``), which misses one across chunks:
    ``exact_rows`` settles a doubt.
    """
    counter = _Counter()
    with (
        ThreadPoolExecutor(1) as counting,
        ThreadPoolExecutor(1) as writing,
        open(text_to, "wb") if text_to else contextlib.nullcontext() as out,
    ):
        pending: list[Future[object]] = []
        for chunk in text_chunks(path, fmt):  # a chunk's count and write end before its buffer is reused
            for done in pending:
                done.result()
            pending = [counting.submit(counter.add, chunk)]
            if out:
                pending.append(writing.submit(out.write, chunk))
        for done in pending:
            done.result()
    return counter.tally()


def exact_rows(path: Path, fmt: str) -> int:
    """The non-blank lines after the header, line by line: slower than ``tally``, and exact."""
    rows = -1  # the header
    start = b""  # the first bytes of the line still open: enough to tell whether it is blank
    for chunk in text_chunks(path, fmt):
        parts = chunk.split(b"\n")
        for part in parts[:-1]:
            rows += (start + part)[:2] not in (b"", b"\r")
            start = b""
        start = (start + parts[-1])[:2]
    return rows + (start not in (b"", b"\r"))


def write_lf(path: Path, fmt: str, dest: Path) -> None:
    """The file's text with every CRLF turned into LF, for a strict read with one line ending."""
    carry = b""
    with open(dest, "wb") as out:
        for chunk in text_chunks(path, fmt):
            text = carry + chunk
            carry = b"\r" if text.endswith(b"\r") else b""
            out.write(text[: len(text) - len(carry)].replace(b"\r\n", b"\n"))
        out.write(carry)


def line_numbers(path: Path, fmt: str, offsets: list[int]) -> dict[int, int]:
    """The line (the header is 1) that starts at or just around each byte offset of the text.

    DuckDB's offset of a line it set aside is its first byte, or the line break before it: a line
    break (LF, or CR LF) at the offset belongs to the line before.
    """
    wanted = sorted(set(offsets))
    found: dict[int, int] = {}
    lines, done = 1, 0
    for chunk in text_chunks(path, fmt):
        while wanted and wanted[0] < done + len(chunk):
            at = wanted.pop(0) - done
            found[at + done] = lines + chunk.count(b"\n", 0, at) + chunk.startswith((b"\n", b"\r\n"), at)
        if not wanted:
            break
        lines += chunk.count(b"\n")
        done += len(chunk)
    found.update(dict.fromkeys(wanted, lines))  # at the end of the text: its last line
    return found


def first_open_quote(path: Path, fmt: str) -> int | None:
    """The first line (the header is 1) with an odd number of quotes: where a quoted value runs on past
    the line break, if any does. Line by line, so only for explaining a read that failed."""
    number, start = 1, b""
    for chunk in text_chunks(path, fmt):
        parts = chunk.split(b"\n")
        for part in parts[:-1]:
            if (start + part).count(b'"') % 2:
                return number
            number, start = number + 1, b""
        start += parts[-1]
    return number if start.count(b'"') % 2 else None


class Malformed(Exception):
    """A line the CSV grammar cannot place onto the header's columns; the message says why."""


def fields(line: str, width: int) -> tuple[list[str], int]:
    """The ``width`` fields of one line, and how many empty fields past them were dropped.

    Raises Malformed for an unbalanced quote, fewer fields than the header, or fields past the
    header that are not empty: the values cannot be told apart, so the line is kept whole.
    """
    try:
        values = next(csv.reader([line], strict=True), [])
    except csv.Error as e:
        raise Malformed(f"unbalanced quote ({e})") from None
    if len(values) < width:
        raise Malformed(f"{len(values)} fields where the header has {width}")
    past = values[width:]
    if any(past):
        raise Malformed(f"{len(values)} fields where the header has {width}, and those past it are not empty")
    return values[:width], len(past)
