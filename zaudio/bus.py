"""Data sockets of a node: :class:`Outlet` (publishing) and :class:`Inlet` (receiving).

An :class:`Outlet` is the publishing side: an XPUB socket connected to the proxy's
XSUB. Being XPUB (not PUB) it hears the subscriptions the proxy forwards, so it
knows when the bus is *ready* (the proxy's :data:`~zaudio.protocol.READY`
subscription arrived, after every stored one) and when the proxy went away (the
subscription was withdrawn). No sleeps: a handshake.

An :class:`Inlet` is the receiving side: a SUB socket connected to the proxy's
XPUB. :func:`confirm_subscriptions` proves its subscriptions reached the proxy.

Publishing audio (stamping, sequencing, buffering an outage) is
:class:`zaudio.publisher.Publisher`, over an Outlet.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Final

import zmq

from zaudio.protocol import READY
from zaudio.security import Keys
from zaudio.wire import WIRE

__all__ = ["Inlet", "Outlet", "confirm_subscriptions", "recv_message"]

log = logging.getLogger(__name__)

_ECHO = b"\xff\xfezaudio/echo/"
_NOBLOCK: Final = int(zmq.NOBLOCK)
_MORE: Final = int(zmq.NOBLOCK | zmq.SNDMORE)
_EVENTS: Final = int(zmq.EVENTS)
_POLLIN: Final = int(zmq.POLLIN)
#: Parts at least this big are sent without a copy (pyzmq copies smaller ones anyway).
_ZERO_COPY: Final = 65536
#: The backend's ``send(socket, data, flags, copy)``, under pyzmq's Python wrapper.
_send: Final = getattr(zmq.backend, "Socket", zmq.Socket).send


def _keepalive(sock: zmq.Socket[Any]) -> None:
    # ZMTP heartbeats notice a peer that vanished without closing (host down,
    # cable pulled) within seconds instead of TCP's minutes.
    sock.setsockopt(zmq.HEARTBEAT_IVL, 1000)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3000)


class Outlet:
    """An XPUB socket publishing to the proxy; owned by the thread that uses it.

    It has a context of its own so that :meth:`close` can wait (up to its linger)
    until queued messages have left, without waiting on anyone else's sockets.
    """

    def __init__(self, *, keys: Keys | None = None, hwm: int = 1000) -> None:
        self._ctx: zmq.Context[Any] = zmq.Context()
        sock = self._ctx.socket(zmq.XPUB)
        sock.linger = 0
        sock.sndhwm = hwm
        # Our only peer is the proxy: when its queue is full, tell us (Again)
        # instead of dropping silently, so every loss is counted here.
        sock.setsockopt(zmq.XPUB_NODROP, 1)
        # Queue nothing for a connection that is not up, and drop the pipe when it
        # breaks: the proxy's READY subscription is then withdrawn, so `ready`
        # tracks the connection and our own buffer, not ZeroMQ's, holds the backlog.
        sock.setsockopt(zmq.IMMEDIATE, 1)
        _keepalive(sock)
        if keys is not None:
            keys.client_socket(sock)
        self.sock = sock
        self._handle = sock.underlying
        self.endpoint: str | None = None
        self.ready = False
        self.subscriptions: set[bytes] = set()
        self.connections = 0
        #: bumped at every change of :attr:`subscriptions` (so users can cache what they derive)
        self.changes = 0

    def connect(self, endpoint: str) -> None:
        """Connect to the proxy's publish-in endpoint (reconnects if it changed)."""
        if endpoint == self.endpoint:
            return
        if self.endpoint is not None:
            self.sock.disconnect(self.endpoint)
            self.ready = False
            self.subscriptions.clear()
            self.changes += 1
        self.sock.connect(endpoint)
        self.endpoint = endpoint

    def pump(self) -> None:
        """Read the subscription changes the proxy forwarded (never blocks)."""
        sock = self.sock
        while int(sock.get(_EVENTS)) & _POLLIN:
            try:
                msg = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if not msg:
                continue
            topic = msg[1:]
            self.changes += 1
            if msg[:1] == b"\x01":
                self.subscriptions.add(topic)
                if topic == READY:
                    self.ready = True
                    self.connections += 1
            elif msg[:1] == b"\x00":
                self.subscriptions.discard(topic)
                if topic == READY:
                    self.ready = False

    def wants(self, topic: bytes) -> bool:
        """True if some subscriber of the proxy would receive ``topic``."""
        return any(topic.startswith(s) for s in self.subscriptions if s != READY)

    def wait_for(self, topic: bytes, timeout: float) -> bool:
        """Wait until the proxy forwards a subscription to ``topic`` (or READY)."""
        deadline = time.monotonic() + timeout
        while True:
            self.pump()
            if topic in self.subscriptions:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.poll(int(min(left, 0.05) * 1000) + 1)

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the bus is ready: every subscription the proxy holds is in effect."""
        return self.wait_for(READY, timeout)

    def send(self, frames: list[Any]) -> bool:
        """Send one message without blocking; False if it could not be queued."""
        # pyzmq's Python-level Socket.send wrapper (and send_multipart's enum flag
        # arithmetic) cost ~30 us per 3-part message on a cold cache: call the
        # backend's send with plain int flags. Zero-copy only for a big last part
        # (pyzmq copies any part under 64 KiB anyway; see docs/benchmarks.md).
        sock = self.sock
        send = _send
        last = frames[-1]
        try:
            for part in frames[:-1]:
                send(sock, part, _MORE, True)
            send(sock, last, _NOBLOCK, getattr(last, "nbytes", 0) < _ZERO_COPY)
        except zmq.Again:
            return False  # only the first part can be refused (messages are atomic)
        return True

    def post(self, frames: list[Any]) -> int:
        """Send one message without blocking, then look at the socket: its ``EVENTS``
        right after the send (``POLLIN``: subscription changes wait for :meth:`pump`),
        or -1 if the message could not be queued.

        The send and the look are one compiled call (:mod:`zaudio.wire`) when the
        last part is under 64 KiB; the Python way otherwise (:meth:`post_python`).
        """
        sock = self.sock
        # (a closed socket's handle is freed memory: pyzmq's send says what is wrong)
        if WIRE is not None and not sock.closed and getattr(frames[-1], "nbytes", 0) < _ZERO_COPY:
            events: int = WIRE.send(self._handle, frames)
            return events
        return self.post_python(frames)

    def post_python(self, frames: list[Any]) -> int:
        """:meth:`post` without the compiled call."""
        if not self.send(frames):
            return -1
        return int(self.sock.get(_EVENTS))

    def close(self, linger: float = 1.0) -> None:
        """Close, waiting up to ``linger`` seconds for queued messages to leave."""
        self.sock.close(int(linger * 1000) if self.ready else 0)
        self._ctx.term()


class Inlet:
    """A SUB socket receiving from the proxy; owned by the thread that uses it."""

    def __init__(
        self,
        *,
        keys: Keys | None = None,
        hwm: int = 10_000,
        ctx: zmq.Context[Any] | None = None,
    ) -> None:
        sock = (ctx or zmq.Context.instance()).socket(zmq.SUB)
        sock.linger = 0
        sock.rcvhwm = hwm
        _keepalive(sock)
        if keys is not None:
            keys.client_socket(sock)
        self.sock = sock
        self.endpoint: str | None = None
        self.topics: list[bytes] = []

    def connect(self, endpoint: str) -> None:
        if endpoint == self.endpoint:
            return
        if self.endpoint is not None:
            self.sock.disconnect(self.endpoint)
        self.sock.connect(endpoint)
        self.endpoint = endpoint

    def subscribe(self, prefix: bytes) -> None:
        self.sock.subscribe(prefix)
        self.topics.append(prefix)

    def recv(self, timeout: float | None = None) -> list[zmq.Frame] | None:
        """One message's frames (not copied), or None after ``timeout`` seconds."""
        if timeout is not None and not self.sock.poll(int(timeout * 1000)):
            return None
        frames: list[zmq.Frame] = self.sock.recv_multipart(copy=False)
        return frames

    def close(self) -> None:
        self.sock.close(0)


def recv_message(sock: zmq.Socket[Any], flags: int = 0) -> list[Any]:
    """Receive one message: the topic as ``bytes``, every later part as a ``zmq.Frame``.

    Cheaper per message than ``recv_multipart``: whether more parts follow is read
    from each frame (``Frame.more``), not with ``getsockopt(RCVMORE)``, which
    pyzmq answers through a Python-level enum (three per message; ~18 us of a
    cold-cache receive, see docs/benchmarks.md). Header and payload stay zero-copy.
    Raises ``zmq.Again`` like ``recv``.
    """
    recv = sock.recv
    frame = recv(flags, copy=False)
    parts: list[Any] = [frame.bytes]
    while frame.more:
        frame = recv(flags, copy=False)
        parts.append(frame)
    return parts


def confirm_subscriptions(inlet: Inlet, outlet: Outlet, timeout: float) -> bool:
    """Prove that ``inlet``'s subscriptions have reached the proxy.

    Subscribes ``inlet`` to a unique echo topic after its other subscriptions and
    waits until ``outlet`` (connected to the same proxy) hears it: subscriptions
    travel in order, so the earlier ones are in effect at the proxy, and any
    publisher that connects from now on receives them first.
    """
    token = _ECHO + os.urandom(8).hex().encode()
    inlet.sock.subscribe(token)
    try:
        return outlet.wait_for(token, timeout)
    finally:
        inlet.sock.unsubscribe(token)


def __getattr__(name: str) -> Any:
    # Publisher lives in zaudio.publisher (which imports this module); it is
    # still importable from here, where it used to be.
    if name == "Publisher":
        from zaudio.publisher import Publisher

        return Publisher
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
