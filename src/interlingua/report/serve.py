"""``interlingua report DIR --serve``: a directory of reports on the loopback interface only."""

from __future__ import annotations

import functools
import http.server
from pathlib import Path

from interlingua.errors import InterlinguaError

HOST = "127.0.0.1"  # never another interface: reports can hold the texts of private corpora


def server(directory: str | Path, port: int = 8000) -> http.server.ThreadingHTTPServer:
    """A server for ``directory`` bound to 127.0.0.1 (``port`` 0 picks a free one); not yet serving."""
    handler = functools.partial(_Quiet, directory=str(directory))
    try:
        return http.server.ThreadingHTTPServer((HOST, port), handler)
    except OSError as exc:
        raise InterlinguaError(f"cannot serve on {HOST}:{port} ({exc.strerror}); choose another --port, or 0 for "
                               "any free one.") from None


def serve(directory: str | Path, port: int = 8000) -> None:
    """Serve ``directory`` until interrupted (Ctrl-C)."""
    httpd = server(directory, port)
    print(f"serving {directory} on http://{HOST}:{httpd.server_address[1]}/report.html (Ctrl-C to stop)")
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002  (no request log on the terminal)
        pass
