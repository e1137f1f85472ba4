"""A REQ socket with a timeout on every request, and a reset after a timeout.

The "lazy pirate" pattern of the ZeroMQ guide: a request that gets no reply
within its timeout abandons the socket (and any reply still on its way) and
raises :class:`~zaudio.errors.ProxyUnreachable`; the next request opens a fresh
socket, which can never receive the stale reply. Requests are typed structs
from :mod:`zaudio.control` (:meth:`Requester.call`) or plain dicts
(:meth:`Requester.request`, for tools that show the reply as it came).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec
import zmq

from zaudio import control
from zaudio.control import ErrorReply
from zaudio.endpoints import control_endpoint
from zaudio.errors import ProxyUnreachable, RemoteProtocolError, RequestRefused
from zaudio.protocol import encode_json
from zaudio.security import Keys

__all__ = ["Requester", "request"]

R = TypeVar("R", bound=msgspec.Struct)


class Requester:
    """A REQ socket with a timeout on every request and a reset after a timeout.

    Owned by one thread. Not a node: ``zaudio ls`` uses it for one-shot requests.
    """

    def __init__(
        self,
        proxy: str | None = None,
        *,
        timeout: float = 1.0,
        keys: Keys | None = None,
        ctx: zmq.Context[Any] | None = None,
    ) -> None:
        self.endpoint = control_endpoint(proxy)
        self.timeout = timeout
        self.keys = keys
        self._ctx = ctx or zmq.Context.instance()
        self._sock: zmq.Socket[Any] | None = None

    def _open(self) -> zmq.Socket[Any]:
        sock: zmq.Socket[Any] = self._ctx.socket(zmq.REQ)
        sock.linger = 0
        if self.keys is not None:
            self.keys.client_socket(sock)
        sock.connect(self.endpoint)
        return sock

    def _exchange(self, frame: bytes, timeout: float | None) -> bytes:
        """Send one request frame and return the reply frame (or reset and raise)."""
        return bytes(self._exchange_all(frame, timeout)[0])

    def _exchange_all(self, frame: bytes, timeout: float | None) -> list[Any]:
        """Send one request frame and return every reply frame (or reset and raise)."""
        if self._sock is None:
            self._sock = self._open()
        sock = self._sock
        timeout = self.timeout if timeout is None else timeout
        sock.send(frame)
        if not sock.poll(int(timeout * 1000)):
            self.reset()
            raise ProxyUnreachable(
                f"no reply from the proxy at {self.endpoint} within {timeout:g} s "
                "(is 'zaudio proxy' running there? pass --proxy or set ZAUDIO_PROXY)"
            )
        return list(sock.recv_multipart(copy=False))

    def call(self, req: control.Request, kind: type[R], timeout: float | None = None) -> R:
        """Send a typed request (:mod:`zaudio.control`) and return its typed reply.

        Raises
        ------
        ProxyUnreachable
            No reply within ``timeout``; the socket has been reset.
        RequestRefused
            The proxy replied ``ok: false`` (``code`` set), or sent a reply that
            does not fit ``kind`` (``code`` ``"bad_reply"``).
        """
        return self.call_frames(req, kind, timeout)[0]

    def call_frames(
        self, req: control.Request, kind: type[R], timeout: float | None = None
    ) -> tuple[R, list[Any]]:
        """:meth:`call`, for a reply that has more frames after its JSON (op ``history``).

        Returns the typed reply and the frames after it (``zmq.Frame``, zero-copy).
        """
        frames = self._exchange_all(control.encode(req), timeout)
        raw = bytes(frames[0])
        try:
            reply = control.decode_reply(raw, kind)
        except RemoteProtocolError as exc:
            self.reset()
            raise RequestRefused(str(exc), "bad_reply") from None
        if isinstance(reply, ErrorReply):
            raise RequestRefused(reply.error, reply.code)
        return reply, frames[1:]

    def request(
        self, msg: Mapping[str, Any] | control.Request, timeout: float | None = None
    ) -> dict[str, Any]:
        """Send one request and return the reply's fields as a dict (``ok: true`` checked).

        Raises
        ------
        ProxyUnreachable
            No reply within ``timeout``; the socket has been reset.
        RequestRefused
            The proxy replied ``ok: false``.
        """
        frame = encode_json(msg) if isinstance(msg, Mapping) else control.encode(msg)
        raw = self._exchange(frame, timeout)
        try:
            reply = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            reply = None
        if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
            self.reset()
            raise RequestRefused("the proxy sent a reply that is not a zaudio reply", "bad_reply")
        if not reply["ok"]:
            raise RequestRefused(str(reply.get("error", "refused")), reply.get("code"))
        return reply

    def reset(self) -> None:
        """Abandon the socket (and any reply still on its way)."""
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    def close(self) -> None:
        self.reset()


def request(
    proxy: str | None,
    msg: Mapping[str, Any] | control.Request,
    *,
    timeout: float = 1.0,
    keys: Keys | None = None,
) -> dict[str, Any]:
    """One request on a fresh socket: ``request(None, {"op": "list"})``."""
    req = Requester(proxy, timeout=timeout, keys=keys)
    try:
        return req.request(msg)
    finally:
        req.close()
