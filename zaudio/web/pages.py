"""The HTTP side of ``zaudio web``: its pages and static files, and the responses it sends.

Every response carries the same safety headers: no caching, no content sniffing,
a Content-Security-Policy that admits only this origin (and its WebSockets), and
the microphone for this origin only.
"""

from __future__ import annotations

import email.utils
import http
from importlib import resources

from websockets.datastructures import Headers
from websockets.http11 import Response

__all__ = ["CSP", "PAGES", "TYPES", "load_static", "response", "text_response"]

PAGES = {"/": "index.html", "/capture": "capture.html", "/monitor": "monitor.html"}
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}
CSP = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:"


def load_static() -> dict[str, bytes]:
    """Every file of ``zaudio/web/static`` by name."""
    folder = resources.files("zaudio.web") / "static"
    return {f.name: f.read_bytes() for f in folder.iterdir() if f.is_file()}


def response(status: int, body: bytes, ctype: str) -> Response:
    """An HTTP response with the server's headers."""
    st = http.HTTPStatus(status)
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", ctype),
            ("Cache-Control", "no-cache"),
            ("X-Content-Type-Options", "nosniff"),
            ("Content-Security-Policy", CSP),
            # the capture page asks for the microphone; nothing else may
            ("Permissions-Policy", "microphone=(self)"),
        ]
    )
    return Response(st.value, st.phrase, headers, body)


def text_response(status: int, text: str) -> Response:
    """A plain-text response."""
    return response(status, text.encode(), "text/plain; charset=utf-8")
