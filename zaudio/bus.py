"""Data sockets of a node, and :class:`Publisher`, the Python API for publishing arrays.

An :class:`Outlet` is the publishing side: an XPUB socket connected to the proxy's
XSUB. Being XPUB (not PUB) it hears the subscriptions the proxy forwards, so it
knows when the bus is *ready* (the proxy's :data:`~zaudio.protocol.READY`
subscription arrived, after every stored one) and when the proxy went away (the
subscription was withdrawn). No sleeps: a handshake.

An :class:`Inlet` is the receiving side: a SUB socket connected to the proxy's
XPUB. :func:`confirm_subscriptions` proves its subscriptions reached the proxy.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Final

import numpy.typing as npt
import zmq

from zaudio import clock
from zaudio.client import NodeClient
from zaudio.protocol import READY, AudioStream
from zaudio.security import Keys

__all__ = ["Inlet", "Outlet", "Publisher", "confirm_subscriptions", "recv_message"]

log = logging.getLogger(__name__)

_ECHO = b"\xff\xfezaudio/echo/"
_NOBLOCK: Final = int(zmq.NOBLOCK)
_MORE: Final = int(zmq.NOBLOCK | zmq.SNDMORE)
_EVENTS: Final = int(zmq.EVENTS)
_RCVMORE: Final = int(zmq.RCVMORE)
_POLLIN: Final = int(zmq.POLLIN)
#: Parts at least this big are sent without a copy (pyzmq copies smaller ones anyway).
_ZERO_COPY: Final = 65536


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
        self.endpoint: str | None = None
        self.ready = False
        self.subscriptions: set[bytes] = set()
        self.connections = 0

    def connect(self, endpoint: str) -> None:
        """Connect to the proxy's publish-in endpoint (reconnects if it changed)."""
        if endpoint == self.endpoint:
            return
        if self.endpoint is not None:
            self.sock.disconnect(self.endpoint)
            self.ready = False
            self.subscriptions.clear()
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
        # send_multipart's enum flag arithmetic and a zmq.Frame per part cost more
        # than the copy pyzmq makes of any part under 64 KiB anyway: plain int
        # flags, and zero-copy only for big parts (see docs/benchmarks.md).
        sock = self.sock
        last = len(frames) - 1
        try:
            for i, part in enumerate(frames):
                sock.send(
                    part,
                    _MORE if i < last else _NOBLOCK,
                    copy=getattr(part, "nbytes", 0) < _ZERO_COPY,
                )
        except zmq.Again:
            return False  # only the first part can be refused (messages are atomic)
        return True

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
    """Receive one message: the topic and header as ``bytes``, the payload as a ``zmq.Frame``.

    Cheaper per message than ``recv_multipart(copy=False)`` (pyzmq reads RCVMORE
    through an enum and makes a ``zmq.Frame`` of every part): ~1 us of a ~7 us
    receive + decode. The payload stays zero-copy. Raises ``zmq.Again`` like ``recv``.
    """
    parts: list[Any] = [sock.recv(flags)]
    get, recv = sock.get, sock.recv
    while get(_RCVMORE):
        parts.append(recv(flags) if len(parts) < 2 else recv(flags, copy=False))
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


class Publisher:
    """Publish float32 blocks from your own code as one audio stream on the bus.

    Registers the stream with the proxy, waits (bounded) until the bus is ready,
    and stamps each block with ``seq``, ``index`` and ``t`` on the sample clock in
    the proxy's time base.

    Parameters
    ----------
    stream : str
        The stream name (``audio/<stream>`` on the wire).
    rate : int
        Sample rate in Hz.
    channels : int
        Channel count.
    proxy : str, optional
        Control endpoint; ``ZAUDIO_PROXY`` or ``tcp://127.0.0.1:5555`` by default.
    keys : Keys, optional
        CurveZMQ client keys.
    wait : float
        Seconds :meth:`start` waits for the proxy before publishing anyway
        (blocks sent while the bus is not ready are counted as dropped).

    Examples
    --------
    >>> import numpy as np, zaudio                                  # doctest: +SKIP
    >>> with zaudio.Publisher("mic", rate=48000, channels=1) as pub:
    ...     pub.send(np.zeros((480, 1), np.float32))
    """

    def __init__(
        self,
        stream: str,
        *,
        rate: int,
        channels: int = 1,
        proxy: str | None = None,
        keys: Keys | None = None,
        name: str | None = None,
        role: str = "recorder",
        wait: float = 2.0,
        hwm: int = 1000,
    ) -> None:
        self.stream = AudioStream(stream, rate, channels)
        self.counters = {"sent": 0, "dropped": 0, "frames": 0}
        self.client = NodeClient(
            proxy,
            role=role,
            name=name or stream,
            registration=self._registration,
            stats=self.stats,
            keys=keys,
        )
        self.outlet = Outlet(keys=keys, hwm=hwm)
        self.wait = wait
        self._t0: float | None = None
        self._closed = False

    def _registration(self) -> dict[str, Any]:
        s = self.stream
        return {"streams": [{"name": s.name, "rate": s.rate, "channels": s.channels}]}

    def stats(self) -> dict[str, Any]:
        """The counters heartbeats carry: ``sent``, ``dropped``, ``frames``."""
        return {**self.counters, "ready": self.outlet.ready}

    def start(self) -> Publisher:
        """Register and wait (at most ``wait`` seconds) for the bus to be ready.

        Raises
        ------
        RequestRefused
            The proxy refused the stream (another live node publishes it).
        """
        self.client.start()
        deadline = time.monotonic() + self.wait
        while time.monotonic() < deadline:
            if self.client.refused is not None:
                self.close()
                raise self.client.refused
            self.connect()
            if self.outlet.ready and self.client.registered.is_set():
                break
            if self.client.endpoints is None:
                self.client.registered.wait(0.02)
            else:
                self.outlet.wait_ready(min(0.05, max(0.0, deadline - time.monotonic())))
        return self

    def connect(self) -> None:
        """Connect the outlet once ``hello`` told us where (cheap to call often)."""
        endpoints = self.client.endpoints
        if endpoints is not None and endpoints.pub != self.outlet.endpoint:
            self.outlet.connect(endpoints.pub)

    def now(self) -> float:
        """Current time in the proxy's time base."""
        return self.client.now()

    def send(self, block: npt.ArrayLike, t: float | None = None) -> bool:
        """Publish one block of shape ``(frames, channels)`` (or ``(frames,)`` if mono).

        ``t`` is the time of its first frame in the proxy's time base; by default
        the sample clock from the first block: ``t0 + index / rate``.
        Returns False if the block could not be sent (counted in ``dropped``).
        """
        s = self.stream
        if t is None:
            if self._t0 is None:
                self._t0 = clock.now()
            t = self._t0 + self.client.offset + s.index / s.rate
        frames = s.encode(block, t)
        n = len(frames[2])
        self.connect()
        self.outlet.pump()
        if self.outlet.ready and self.outlet.send(frames):
            self.counters["sent"] += 1
            self.counters["frames"] += n
            return True
        self.counters["dropped"] += 1
        return False

    def close(self) -> None:
        """Flush, send ``disconnect`` and close. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.outlet.close()
        self.client.close()

    def __enter__(self) -> Publisher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
