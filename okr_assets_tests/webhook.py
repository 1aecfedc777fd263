"""A real HTTP server standing in for a Slack incoming webhook: records every JSON body posted to it.

It answers with a chosen status, optionally after a delay (a slow receiver), on a free port of
127.0.0.1, served from a thread for the duration of a ``with`` block.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


class WebhookServer:
    def __init__(self, status: int = 200, delay_seconds: float = 0.0) -> None:
        self.status = status
        self.delay_seconds = delay_seconds
        self.received: list[dict] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/hooks/okr"

    def __enter__(self) -> "WebhookServer":
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.received.append(json.loads(body))
                time.sleep(owner.delay_seconds)
                try:
                    self.send_response(owner.status)
                    self.end_headers()
                    self.wfile.write(b"ok" if owner.status < 400 else b"error")
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

            def log_message(self, format: str, *args: object) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def texts(self) -> list[str]:
        return [body["text"] for body in self.received]
