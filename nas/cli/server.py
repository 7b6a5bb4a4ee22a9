"""The dashboard's HTTP server (imported only by ``nas dashboard``, so that every other
command starts without the standard library's web server)."""

from __future__ import annotations

import errno
import socketserver
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from nas.errors import NasError


class ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


def listen(host: str, port: int) -> ThreadingServer:
    """Take the port before any work is done: one in use is refused in one line at once. The
    server answers nothing until its application is set."""

    def not_ready(environ: Any, start_response: Any) -> list[bytes]:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"starting"]

    try:
        server = make_server(
            host, port, not_ready, server_class=ThreadingServer, handler_class=_QuietHandler
        )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise NasError(f"port {port} on {host} is in use; pass another --port") from None
        raise NasError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    assert isinstance(server, ThreadingServer)
    return server
