"""A real HTTP server on 127.0.0.1 serving a mirror directory, counting requests and injecting faults.

One server for everything that needs the TLC's files without the network: ``taxi-luigi demo``, the
tests, the benchmarks and the GCP smoke script. It answers as CloudFront does, so the pipeline's own
HTTP code runs unchanged against it, and it counts what it is asked, so a run can show what it fetched.
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import socket
import struct
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Reset:
    """The file's headers and first ``after`` bytes, then a real TCP reset (SO_LINGER 0, then close).

    ``then`` runs once the connection is gone, e.g. to replace the file as a re-issued month would be.
    """

    after: int
    then: Callable[[], object] | None = None


@dataclass(frozen=True)
class Stall:
    """Accept, send the file's headers and first ``after`` bytes (None: not even the headers), then hang
    until the server stops."""

    after: int | None = None


class MirrorServer:
    """Serves ``root`` with Range and If-Range, as CloudFront does; ``faults[path]`` is a list of answers
    given before the file.

    An answer is (status, body) or (status, body, content_length): a Content-Length larger
    than the body makes the server close the connection mid-body; or a Reset or a Stall.
    ``requests`` counts downloads, ``ranges`` lists the Range headers they sent, ``probes``
    counts the one-byte requests that ask whether a file exists; ``delay`` slows every
    download down by that many seconds. It listens on a free port; ``url`` says which.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: Counter[str] = Counter()
        self.ranges: defaultdict[str, list[str]] = defaultdict(list)
        self.probes: Counter[str] = Counter()
        self.faults: dict[str, list[tuple | Reset | Stall]] = {}
        self.delay = 0.0
        self.stopping = threading.Event()
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.headers.get("Range") == "bytes=0-0":
                    server.probes[self.path] += 1
                    self.send_head_only()
                    return
                server.requests[self.path] += 1
                if "Range" in self.headers:
                    server.ranges[self.path].append(self.headers["Range"])
                time.sleep(server.delay)
                pending = server.faults.get(self.path)
                if not pending:
                    self.send_file()
                elif isinstance(answer := pending.pop(0), Reset):
                    self.reset(answer)
                elif isinstance(answer, Stall):
                    self.stall(answer)
                else:
                    status, body, *length = answer
                    self.send_response(status)
                    self.send_header("Content-Length", str(length[0] if length else len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    self.close_connection = True

            def send_file(self) -> None:
                """The file, or from a Range's first byte on (206) unless If-Range names another version;
                streamed, so a full-size month never sits in memory."""
                path = Path(self.translate_path(self.path))
                if not path.is_file():
                    super().do_GET()  # 404s and listings as before
                    return
                size = path.stat().st_size
                start = self.range_start(path)
                if start >= size > 0:
                    self.send_error(416)
                    return
                self.send_file_headers(path, size, start)
                with path.open("rb") as f:
                    f.seek(start)
                    shutil.copyfileobj(f, self.wfile)

            def range_start(self, path: Path) -> int:
                """Where the answer starts: 0 without a single open or closed byte range, or when If-Range
                holds a validator of another version of the file (then the whole new file is sent)."""
                match = re.fullmatch(r"bytes=(\d+)-\d*", self.headers.get("Range", ""))
                if_range = self.headers.get("If-Range")
                if not match or (if_range and if_range not in self.validators(path).values()):
                    return 0
                return int(match[1])

            def validators(self, path: Path) -> dict[str, str]:
                stat = path.stat()
                return {
                    "ETag": f'"{stat.st_ino:x}-{stat.st_size:x}-{stat.st_mtime_ns:x}"',
                    "Last-Modified": self.date_time_string(int(stat.st_mtime)),
                }

            def send_file_headers(self, path: Path, size: int, start: int = 0) -> None:
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(size - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
                for name, value in self.validators(path).items():
                    self.send_header(name, value)
                self.end_headers()

            def send_first(self, after: int) -> None:
                """The whole file's headers, then only its first ``after`` bytes: a download cut short."""
                path = Path(self.translate_path(self.path))
                self.send_file_headers(path, path.stat().st_size)
                with path.open("rb") as f:
                    self.wfile.write(f.read(after))

            def reset(self, fault: Reset) -> None:
                self.send_first(fault.after)
                time.sleep(0.2)  # let the client read what was sent: a reset discards what it has not read
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.rfile.close()  # the socket closes (and resets) only when its last file object does
                self.connection.close()
                self.close_connection = True
                if fault.then:
                    fault.then()

            def stall(self, fault: Stall) -> None:
                if fault.after is not None:
                    self.send_first(fault.after)
                server.stopping.wait(60)
                self.close_connection = True

            def send_head_only(self) -> None:
                """Headers only, as a server that ignores the range sends before the client hangs up: for a
                file, the same size and validators (ETag, Last-Modified) as its download."""
                path = Path(self.translate_path(self.path))
                if path.is_file():
                    self.send_file_headers(path, path.stat().st_size)
                    self.close_connection = True
                    return
                f = self.send_head()
                if f:
                    f.close()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def template(self, ext: str = ".parquet") -> str:
        """A ``[source] url_template`` for this mirror, laid out as the sample writes it."""
        return self.url + "/{service}/{service}_tripdata_{year}-{month:02d}" + ext

    def downloads(self) -> int:
        """Requests for a file's bytes, probes not counted: what a run fetched."""
        return sum(self.requests.values())

    def __enter__(self) -> MirrorServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
