"""A real HTTP server on 127.0.0.1 serving a sample mirror, counting requests and injecting faults."""

from __future__ import annotations

import functools
import http.server
import threading
import time
from collections import Counter
from pathlib import Path


class MirrorServer:
    """Serves ``root``; ``faults[path]`` is a list of answers given before the file.

    An answer is (status, body) or (status, body, content_length): a Content-Length larger
    than the body makes the server close the connection mid-body. ``requests`` counts
    downloads, ``probes`` the one-byte requests that ask whether a file exists; ``delay``
    slows every download down by that many seconds.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: Counter[str] = Counter()
        self.probes: Counter[str] = Counter()
        self.faults: dict[str, list[tuple]] = {}
        self.delay = 0.0
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.headers.get("Range") == "bytes=0-0":
                    server.probes[self.path] += 1
                    self.send_head_only()
                    return
                server.requests[self.path] += 1
                time.sleep(server.delay)
                pending = server.faults.get(self.path)
                if pending:
                    status, body, *length = pending.pop(0)
                    self.send_response(status)
                    self.send_header("Content-Length", str(length[0] if length else len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    self.close_connection = True
                    return
                super().do_GET()

            def send_head_only(self) -> None:
                """Headers only, as a server that ignores the range sends before the client hangs up."""
                f = self.send_head()
                if f:
                    f.close()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def template(self, ext: str = ".parquet") -> str:
        return self.url + "/{service}/{service}_tripdata_{year}-{month:02d}" + ext

    def downloads(self) -> int:
        return sum(self.requests.values())

    def __enter__(self) -> MirrorServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
