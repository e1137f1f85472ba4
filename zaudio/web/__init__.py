"""The browser side of zaudio: a capture page (a microphone in any browser as a
source) and a live monitor page, served by :class:`WebServer` (``zaudio web``).

Needs the ``web`` extra (``pip install 'zaudio[web]'``, for ``websockets``).
"""

from __future__ import annotations

from zaudio.web.server import WebServer, is_loopback

__all__ = ["WebServer", "is_loopback"]
