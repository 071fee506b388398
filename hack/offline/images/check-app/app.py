"""HTTP server for `make cluster-check`: `/` answers, `/metrics` is scraped by Prometheus,
`/burn?ms=N` spends CPU so the HPA and `kubectl top` have something to show."""

import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REQUESTS = 0


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        global REQUESTS
        REQUESTS += 1
        if self.path == "/metrics":
            body = (
                "# HELP check_requests_total Requests served.\n"
                "# TYPE check_requests_total counter\n"
                f"check_requests_total {REQUESTS}\n"
            )
            ctype = "text/plain; version=0.0.4"
        elif self.path.startswith("/burn"):
            ms = int(self.path.partition("ms=")[2] or 100)
            end = time.monotonic() + ms / 1000
            while time.monotonic() < end:
                pass
            body, ctype = f"burned {ms} ms\n", "text/plain"
        else:
            body, ctype = f"ok from {os.environ.get('HOSTNAME', '?')}\n", "text/plain"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # quiet access log
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("", 8080), Handler).serve_forever()
