"""Fetch one month's source file: stream it to a temporary name, verify it, then rename.

The final name only ever holds a file that arrived whole and has the columns of the
service asked for, so the Download target existing means the download is complete.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from errno import ECONNREFUSED, EHOSTUNREACH, ENETUNREACH
from pathlib import Path
from typing import TypeGuard, TypeVar

import pyarrow.parquet as pq

from taxi_luigi import rawcsv, services, staging

CHUNK = 1 << 20
FORMATS = (".csv.gz", ".parquet", ".csv")
GZIP_MAGIC = b"\x1f\x8b"
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
#: CloudFront answers 403 for a file that does not exist yet, GitHub releases 404.
NOT_FOUND_STATUS = frozenset({403, 404, 410})
RANGE_NOT_SATISFIABLE = 416
#: Connecting failed before any server answered, and waiting will not change that: nothing listens on that port
#: (a mistyped port, a server that is not running), or this machine has no route to the host (offline).
NO_ROUTE_ERRNOS = frozenset({ECONNREFUSED, ENETUNREACH, EHOSTUNREACH})
#: How long to wait before asking the resolver once more after EAI_AGAIN ("Temporary failure in name
#: resolution"), the answer of a machine with no network or no DNS server; it is asked once more only.
RESOLVE_AGAIN_SECONDS = 1.0


class SourceError(Exception):
    """A month's source file could not be fetched or is not what it should be."""


class NotPublished(SourceError):
    """The source has no file for this month (yet)."""


class Unreachable(SourceError):
    """The source's host does not resolve, refuses the connection or has no route: every month of the run
    would fail the same way, so it is neither retried with backoff nor "not yet available"."""


@dataclass(frozen=True)
class Fetched:
    """What was downloaded: recorded next to the raw file and carried into the manifest."""

    url: str
    format: str
    bytes: int
    columns: list[str]
    etag: str | None = None
    last_modified: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def file_format(url: str) -> str:
    """The format follows the file name: .parquet, .csv.gz or .csv."""
    path = urllib.parse.urlparse(url).path if "://" in url else url
    for fmt in FORMATS:
        if path.lower().endswith(fmt):
            return fmt
    raise SourceError(f"{url}: cannot tell the format; the file name must end in {', '.join(FORMATS)}")


def local_path(url: str) -> Path | None:
    """The filesystem path of a file:// URL or a plain path; None for http(s)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:
        raise SourceError(f"{url}: unsupported scheme {parsed.scheme!r}; use http(s)://, file:// or a path")
    return Path(url)


def local_version(path: Path) -> str:
    """A local file's stand-in for Last-Modified: its mtime in nanoseconds, recorded by ``fetch`` and
    reported by ``probe`` alike, so ``taxi-luigi refresh`` compares like with like."""
    return f"{path.stat().st_mtime_ns}"


ProgressFn = Callable[[int, int | None], None]


def fetch(
    url: str,
    dest: Path,
    svc: services.Service,
    label: str,
    *,
    retries: int = 4,
    backoff: float = 2.0,
    timeout: float = 60.0,
    progress: ProgressFn | None = None,
) -> Fetched:
    """Download ``url`` to ``dest`` atomically and verify it belongs to ``svc``.

    ``label`` (e.g. "yellow 2021-03") starts every error message, so a failed month in
    a year's run is named without reading a traceback.
    """
    fmt = file_format(url)
    with staging.staged(dest) as part:
        etag, modified = download(
            url, part, label, retries=retries, backoff=backoff, timeout=timeout, progress=progress
        )
        columns = verify(part, fmt, svc, label, url)
        size = part.stat().st_size
        os.replace(part, dest)
    return Fetched(url, fmt, size, columns, etag, modified)


def download(
    url: str,
    part: Path,
    label: str,
    *,
    retries: int = 4,
    backoff: float = 2.0,
    timeout: float = 60.0,
    progress: ProgressFn | None = None,
) -> tuple[str | None, str | None]:
    """The bytes at ``url`` (http(s)://, file:// or a path) into ``part``, unverified; their ETag and
    Last-Modified (a local file's mtime). The caller verifies them and renames ``part``: NotPublished
    when there is no file, SourceError when the source cannot be reached."""
    src = local_path(url)
    if src is None:
        return _http_download(url, part, label, retries, backoff, timeout, progress)
    modified = local_version(src) if src.is_file() else None
    _copy_local(src, part, label, url)
    return None, modified


def _copy_local(src: Path, part: Path, label: str, url: str) -> None:
    try:
        with open(src, "rb") as fin, open(part, "wb") as fout:
            shutil.copyfileobj(fin, fout, CHUNK)
    except FileNotFoundError:
        raise NotPublished(
            f"{label}: no file at {url}. Check [source] url_template, or whether the month exists."
        ) from None


def _http_download(
    url: str,
    part: Path,
    label: str,
    retries: int,
    backoff: float,
    timeout: float,
    progress: ProgressFn | None,
) -> tuple[str | None, str | None]:
    """Stream with retries; after a cut connection, resume with a Range request when the server allows.

    The resume carries If-Range with the version of the bytes already here, so a file replaced in
    between (a re-issued month) comes whole instead of spliced onto the old one's start.
    """
    version: str | None = None  # the ETag or Last-Modified of the bytes in ``part``

    def attempt() -> tuple[str | None, str | None]:
        nonlocal version
        have = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": "taxi-luigi", "Accept-Encoding": "identity"}
        if have and version:
            headers.update({"Range": f"bytes={have}-", "If-Range": version})
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
                resumed = resp.status == 206
                if not resumed:
                    etag = resp.headers.get("ETag")
                    version = etag if etag and not etag.startswith("W/") else resp.headers.get("Last-Modified")
                total = _expected_total(resp, have if resumed else 0)
                buffer = memoryview(bytearray(CHUNK))  # one buffer, reused: no 1 MB allocation per read
                with open(part, "ab" if resumed else "wb") as out:
                    done = have if resumed else 0
                    while n := resp.readinto(buffer):
                        out.write(buffer[:n])
                        done += n
                        if progress:
                            progress(done, total)
                if total is not None and done != total:
                    raise http.client.IncompleteRead(b"", total - done)
                return resp.headers.get("ETag"), resp.headers.get("Last-Modified")
        except urllib.error.HTTPError as e:
            if e.code == RANGE_NOT_SATISFIABLE:  # our Range start is past the end: the file changed, start over
                part.unlink(missing_ok=True)
            raise

    return _retrying(attempt, label, url, "download of", retries, backoff)


@dataclass(frozen=True)
class Remote:
    """What the source says of a month's file without sending it."""

    url: str
    bytes: int | None
    etag: str | None = None
    last_modified: str | None = None


def probe(url: str, label: str, *, retries: int = 4, backoff: float = 2.0, timeout: float = 60.0) -> Remote | None:
    """Whether the source has published the file (None: not yet), and its size and version if so; a host that
    cannot be reached is Unreachable, never "not yet".

    A ranged GET of one byte rather than a HEAD: urllib turns a redirected HEAD into a full GET,
    and GitHub's release downloads redirect. Servers that ignore the range still only send headers
    before the connection is closed.
    """
    src = local_path(url)
    if src is not None:
        if not src.is_file():
            return None
        return Remote(url, src.stat().st_size, last_modified=local_version(src))
    headers = {"User-Agent": "taxi-luigi", "Accept-Encoding": "identity", "Range": "bytes=0-0"}

    def attempt() -> Remote:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
            total = resp.headers.get("Content-Range", "").rpartition("/")[2]
            size = int(total) if total.isdigit() else _expected_total(resp, 0)
            return Remote(url, size, resp.headers.get("ETag"), resp.headers.get("Last-Modified"))

    try:
        return _retrying(attempt, label, url, "a look at", retries, backoff)
    except NotPublished:
        return None


def check_reachable(url: str, label: str, timeout: float) -> None:
    """Raise Unreachable if ``url``'s host cannot be reached at all; say nothing of any other answer.

    One ``probe`` without retries, before a run fans out over months that would each find the same thing: a 404
    or a 5xx means a server answered, and a timeout or a reset is left to the downloads and their retries.
    """
    try:
        probe(url, label, retries=0, timeout=timeout)
    except Unreachable:
        raise
    except SourceError:
        pass


T = TypeVar("T")


def _retrying(attempt: Callable[[], T], label: str, url: str, what: str, retries: int, backoff: float) -> T:
    """``attempt()`` until it returns, again after a retryable HTTP status or a network error, waiting
    ``backoff`` seconds, doubled each time. A missing file is NotPublished; other statuses fail at once.

    A host that cannot be reached at all (see ``_no_route``) is Unreachable at once: backoff would only make an
    offline run or a mistyped host take minutes to say so. EAI_AGAIN alone is asked once more, a second later,
    for a resolver that hiccuped."""
    failures = 0
    resolved_again = False
    while True:
        try:
            return attempt()
        except urllib.error.HTTPError as e:
            if e.code in NOT_FOUND_STATUS:
                raise NotPublished(
                    f"{label}: the source has no file at {url} (HTTP {e.code}). The TLC publishes a month "
                    "about two months after it ends, and the DataTalksClub mirror (preset dtc) stops at "
                    "2021-07: check the month, or switch [source] preset / url_template."
                ) from None
            if e.code not in RETRYABLE_STATUS and e.code != RANGE_NOT_SATISFIABLE:
                raise SourceError(f"{label}: {url} answered HTTP {e.code} {e.reason}; not retried.") from None
            error: Exception = e
        except (TimeoutError, urllib.error.URLError, http.client.HTTPException, ConnectionError) as e:
            if isinstance(e, urllib.error.URLError) and _no_route(e.reason):
                if _resolving_again(e.reason) and not resolved_again:
                    resolved_again = True
                    time.sleep(RESOLVE_AGAIN_SECONDS)
                    continue
                raise Unreachable(_unreachable_message(label, url, e.reason)) from None
            error = e
        failures += 1
        if failures > retries:
            raise SourceError(
                f"{label}: {what} {url} failed after {retries + 1} attempts ({_describe(error)}). "
                "Nothing is marked complete; rerun when the source is reachable."
            ) from None
        time.sleep(backoff * 2 ** (failures - 1))


def _no_route(reason: object) -> TypeGuard[OSError]:
    """Whether urlopen failed before reaching any server, for a reason backoff does not cure: the name does not
    resolve (every getaddrinfo error: EAI_NONAME, EAI_NODATA, EAI_FAIL are answers, not timeouts; EAI_AGAIN is
    asked once more), or connecting was refused or had no route. A connect timeout is not one of them: it stays
    retried, as a congested network may clear."""
    return isinstance(reason, socket.gaierror) or (isinstance(reason, OSError) and reason.errno in NO_ROUTE_ERRNOS)


def _resolving_again(reason: object) -> bool:
    return isinstance(reason, socket.gaierror) and reason.errno == socket.EAI_AGAIN


def _contacted(url: str) -> str:
    """The host[:port] urlopen connects to for ``url``: its own, or the proxy's from the environment
    (``https_proxy`` and the like), whose name is then the one that failed. Credentials are left out."""
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        via = urllib.parse.urlsplit(proxy if "://" in proxy else f"//{proxy}")
        return f"the proxy {via.netloc.rpartition('@')[2]} ({parts.scheme}_proxy)"
    return parts.netloc.rpartition("@")[2]


def _unreachable_message(label: str, url: str, reason: OSError) -> str:
    host = _contacted(url)
    if _resolving_again(reason):
        why = (
            f"{host} could not be resolved, twice {RESOLVE_AGAIN_SECONDS:g} s apart ({reason.strerror}): no network, "
            "or no DNS server answering? Check this machine's network and DNS, and the host in [source] url_template "
            "(or preset)"
        )
    elif isinstance(reason, socket.gaierror):
        why = (
            f"{host} does not resolve ({reason.strerror}). Check the host in [source] url_template (or preset), "
            "and this machine's DNS"
        )
    elif reason.errno == ECONNREFUSED:
        why = (
            f"{host} refused the connection ({reason.strerror}): nothing listens there. Check the host and port in "
            "[source] url_template, and that the server is running"
        )
    else:
        why = (
            f"no route to {host} ({reason.strerror}): is this machine offline? Check its network, and the host in "
            "[source] url_template (or preset)"
        )
    return f"{label}: cannot reach the source ({url}): {why}; nothing is marked complete."


def _expected_total(resp: http.client.HTTPResponse, offset: int) -> int | None:
    length = resp.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def _describe(error: Exception) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, http.client.IncompleteRead):
        return f"connection closed with {error.expected} bytes still to come"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return f"{type(error).__name__}: {error}"


def verify(path: Path, fmt: str, svc: services.Service, label: str, url: str) -> list[str]:
    """Check the file is whole and has ``svc``'s columns; return its column names."""
    size = path.stat().st_size
    if size == 0:
        raise SourceError(f"{label}: {url} is empty (0 bytes). Rerun later or check the source.")
    with open(path, "rb") as f:
        head = f.read(65536)
    if _is_html(head):
        raise SourceError(
            f"{label}: {url} returned an HTML page, not a {fmt} file (a web page URL instead of the file's "
            "download URL?). Check [source] url_template."
        )
    if fmt == ".parquet":
        columns = _parquet_columns(path, head, label, url)
    elif fmt == ".csv.gz":
        _check_gzip(head, label, url)
        columns = csv_header(path, fmt, label, url)
    elif head[:2] == GZIP_MAGIC:
        raise SourceError(
            f"{label}: {url} is gzip-compressed, although its name ends in .csv (a .csv.gz saved under another "
            "name?). Name it .csv.gz in [source] url_template, or unpack it."
        )
    else:
        columns = csv_header(path, fmt, label, url)
    _check_columns(svc, columns, label, url)
    return columns


def _is_html(head: bytes) -> bool:
    text = head.lstrip().lower()
    return text.startswith((b"<!doctype html", b"<html", b"<?xml")) or b"<html" in text[:256]


def _parquet_columns(path: Path, head: bytes, label: str, url: str) -> list[str]:
    with open(path, "rb") as f:
        f.seek(max(path.stat().st_size - 4, 0))  # a file shorter than the marker is read whole
        tail = f.read(4)
    if head[:4] != b"PAR1" or tail != b"PAR1":
        raise SourceError(
            f"{label}: {url} is not a whole parquet file (the PAR1 marker is missing at the "
            f"{'start' if head[:4] != b'PAR1' else 'end'}: cut short?). Rerun to download it again."
        )
    try:
        return pq.ParquetFile(path).schema_arrow.names
    except Exception as e:
        raise SourceError(
            f"{label}: {url}: the parquet footer cannot be read ({e}). Rerun to download it again; if that "
            "does not help, the source file is damaged."
        ) from None


def _check_gzip(head: bytes, label: str, url: str) -> None:
    """Only the magic number here: Clean decompresses the whole file once anyway and checks its CRC
    there (see ``rawcsv.tally``), instead of every month paying for a second full decompression."""
    if head[:2] != GZIP_MAGIC:
        raise SourceError(f"{label}: {url} is not gzip-compressed, although its name ends in .csv.gz.")


def csv_header(path: Path, fmt: str, label: str, url: str) -> list[str]:
    """The column names on a csv or csv.gz file's first line, or a SourceError saying why there are none."""
    try:
        return rawcsv.header(path, fmt)
    except rawcsv.HeaderError as e:
        if str(e) == "the first line is empty":
            raise SourceError(f"{label}: {url} has no header line. Check [source] url_template.") from None
        raise SourceError(
            f"{label}: {url}: its header line cannot be read ({e}). Rerun to download it again; if that "
            "does not help, the source file is damaged."
        ) from None


def _check_columns(svc: services.Service, columns: list[str], label: str, url: str) -> None:
    missing = services.missing_required(svc, columns)
    candidates = services.looks_like(columns)
    if missing or (candidates and candidates[0] != svc.name and svc.name in candidates):
        found = f"it looks like a {candidates[0]} file" if candidates else "it matches no TLC service"
        detail = f" (missing {', '.join(missing)})" if missing else ""
        raise SourceError(
            f"{label}: {url} is not a {svc.name} file{detail}: {found}; its header is "
            f"{', '.join(columns[:8])}{', ...' if len(columns) > 8 else ''}; check [source] url_template."
        )
    try:
        services.map_columns(svc, columns)
    except ValueError as e:
        raise SourceError(f"{label}: {url}: {e}; fix the file or the aliases in services.py.") from None
