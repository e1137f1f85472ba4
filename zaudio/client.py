"""The control-channel client every node uses: hello, register, heartbeats, clock offset.

A :class:`NodeClient` runs one background thread that owns a REQ socket. Every
request has a timeout; a request that times out abandons the socket, opens a
new one (the "lazy pirate" pattern) and retries with back-off. The node's data
path never waits on it: it reads :attr:`NodeClient.endpoints` and
:attr:`NodeClient.offset`, plain attributes, when it needs them. The REQ socket
with its timeouts is :class:`~zaudio.requester.Requester` (re-exported here with
:func:`request`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from zaudio import clock, control
from zaudio.control import (
    Disconnect,
    Heartbeat,
    HeartbeatReply,
    Hello,
    HelloReply,
    OkReply,
    Register,
    RegisterReply,
    Share,
    StreamInfo,
    Time,
    TimeReply,
)
from zaudio.endpoints import control_endpoint, resolve
from zaudio.errors import LocalProtocolError, ProxyUnreachable, RequestRefused
from zaudio.protocol import encode_json
from zaudio.requester import Requester, request
from zaudio.security import Keys

__all__ = ["Endpoints", "NodeClient", "Requester", "request"]

log = logging.getLogger(__name__)

CLOCK_SAMPLES = 5
CLOCK_RESYNC = 30.0
BACKOFF_MAX = 5.0


@dataclass(frozen=True)
class Endpoints:
    """Where a node's data sockets connect (from ``hello``)."""

    pub: str
    sub: str


def measure_offset(req: Requester, samples: int = CLOCK_SAMPLES) -> tuple[float, float]:
    """Offset of the proxy's clock to ours, from the ``time`` sample with the smallest RTT.

    Returns ``(offset, rtt)``: proxy time = local time + offset.
    """
    return best_offset(lambda: req.call(Time(), TimeReply).time, samples)


def best_offset(ask: Callable[[], float], samples: int = CLOCK_SAMPLES) -> tuple[float, float]:
    """``(offset, rtt)`` from the ``ask()`` (one ``time`` round trip) with the smallest RTT."""
    best: tuple[float, float] | None = None
    for _ in range(samples):
        t0 = clock.now()
        remote = ask()
        t1 = clock.now()
        rtt = t1 - t0
        if best is None or rtt < best[1]:
            best = (remote - (t0 + t1) / 2, rtt)
    assert best is not None
    return best


class NodeClient:
    """Registration, heartbeats and clock offset of one node, in a background thread.

    Parameters
    ----------
    proxy : str, optional
        Control endpoint (``tcp://HOST:5555``); ``ZAUDIO_PROXY`` or loopback by default.
    role, name : str
        What the node registers as.
    registration : callable, optional
        Returns the role-specific registration fields (``streams``, ``topics``,
        ``outputs``); called at every (re-)registration, which also carries
        every stream announced since with :meth:`update` and the current
        counters: after a proxy restart the registry holds what it held.
    stats : callable, optional
        Returns the counters each heartbeat carries.
    timeout : float
        Seconds to wait for each reply.
    keys : Keys, optional
        CurveZMQ client keys.
    """

    def __init__(
        self,
        proxy: str | None = None,
        *,
        role: str,
        name: str,
        registration: Callable[[], dict[str, Any]] | None = None,
        stats: Callable[[], dict[str, Any]] | None = None,
        timeout: float = 1.0,
        keys: Keys | None = None,
    ) -> None:
        self.control = control_endpoint(proxy or os.environ.get("ZAUDIO_PROXY"))
        self.role = role
        self.name = name
        self.keys = keys
        self.timeout = timeout
        self._registration = registration or dict
        self._stats = stats or dict
        #: data endpoints, once ``hello`` answered
        self.endpoints: Endpoints | None = None
        #: proxy clock minus local clock, seconds (0 until measured)
        self.offset = 0.0
        self.offset_known = False
        self.rtt: float | None = None
        #: node id while registered, else None
        self.id: str | None = None
        self.heartbeat = 1.0
        #: the last refusal or failure, for the node to report
        self.error: str | None = None
        self.refused: RequestRefused | None = None
        self.registrations = 0
        self.registered = threading.Event()
        #: a group member's last share, with the monotonic time its heartbeat was sent
        self.share: tuple[float, Share] | None = None
        #: streams announced with update(): in every later registration too
        self._announced: list[StreamInfo] | None = None
        self._announce_pending = False
        self._stats_warned = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- public ------------------------------------------------------------

    def start(self) -> NodeClient:
        self._thread = threading.Thread(target=self._run, name="zaudio-client", daemon=True)
        self._thread.start()
        return self

    def now(self) -> float:
        """Current time in the proxy's time base (local clock until the offset is known)."""
        return clock.now() + self.offset

    def wait_registered(self, timeout: float) -> bool:
        return self.registered.wait(timeout)

    def update(self, *, streams: Sequence[Mapping[str, Any] | StreamInfo] | None = None) -> None:
        """Heartbeat now; with ``streams``, announce their format (``{name, rate, channels}``).

        The names must be ones the registration listed (in ``outputs`` or
        ``streams``); they are sent with the next heartbeat and with every
        registration after it.

        Raises
        ------
        LocalProtocolError
            A stream that the protocol cannot describe (bad name, rate, channels).
        """
        if streams is not None:
            try:
                self._announced = [
                    s if isinstance(s, StreamInfo) else msgspec.convert(s, StreamInfo)
                    for s in streams
                ]
            except msgspec.ValidationError as exc:
                raise LocalProtocolError(f"cannot announce {streams!r}: {exc}") from None
            self._announce_pending = True
        self._wake.set()

    def close(self, timeout: float = 0.5) -> None:
        """Stop heartbeats and send ``disconnect`` (waiting at most ``timeout``)."""
        self._disconnect_timeout = timeout
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout + self.timeout + 1)
            self._thread = None

    def __enter__(self) -> NodeClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- thread ------------------------------------------------------------

    def _run(self) -> None:
        req = Requester(self.control, timeout=self.timeout, keys=self.keys)
        backoff = 0.1
        next_sync = 0.0
        warned = False
        try:
            while not self._stop.is_set():
                try:
                    if self.endpoints is None:
                        self._hello(req)
                    if time.monotonic() >= next_sync or not self.offset_known:
                        self.offset, self.rtt = measure_offset(req)
                        self.offset_known = True
                        next_sync = time.monotonic() + CLOCK_RESYNC
                    if self.id is None:
                        self._register(req)
                    else:
                        self._beat(req)
                    if warned:
                        log.info("proxy at %s answers again", self.control)
                    warned = False
                    backoff = 0.1
                    self.error = None
                    wait = self.heartbeat
                except ProxyUnreachable as exc:
                    self.error = str(exc)
                    if not warned:
                        log.warning("%s; retrying", exc)
                        warned = True
                    wait, backoff = backoff, min(backoff * 2, BACKOFF_MAX)
                except RequestRefused as exc:
                    self.error = str(exc)
                    if exc.code == "unknown_id":
                        log.info("proxy forgot node %s (restarted?): registering again", self.id)
                        self.id = None
                        self.share = None  # a group member's share with it is void
                        self.registered.clear()
                        self.endpoints = None
                        wait = 0.0
                    elif exc.code == "rate_limited":
                        # not a refusal of this node: it asked too fast; ask again later
                        log.warning("proxy at %s: %s", self.control, exc)
                        wait, backoff = backoff, min(backoff * 2, BACKOFF_MAX)
                    else:
                        if self.id is None:
                            self.refused = exc
                        log.error("proxy refused %s %r: %s", self.role, self.name, exc)
                        wait, backoff = backoff, min(backoff * 2, BACKOFF_MAX)
                self._wake.wait(wait)
                self._wake.clear()
            if self.id is not None:
                with contextlib.suppress(ProxyUnreachable, RequestRefused):
                    if self.share is not None:
                        self._beat(req)  # a group member's final progress (zaudio.share)
                    req.call(
                        Disconnect(id=self.id),
                        OkReply,
                        timeout=getattr(self, "_disconnect_timeout", 0.5),
                    )
                self.id = None
        finally:
            req.close()

    def _hello(self, req: Requester) -> None:
        reply = req.call(Hello(), HelloReply)
        self.endpoints = Endpoints(
            resolve(reply.pub, self.control), resolve(reply.sub, self.control)
        )

    def _counters(self) -> control.Stats | None:
        """The node's counters if they fit the protocol's bounds (else None, warned once)."""
        try:  # as JSON carries them: numpy numbers become numbers, NaN null
            stats: control.Stats = msgspec.json.decode(encode_json(self._stats()))
            problem = control.stats_problem(stats)
            if problem is not None and control.STREAMS_KEY in stats:
                # the per-stream breakdown goes first, the totals stay (zaudio.perstream)
                del stats[control.STREAMS_KEY]
                problem = control.stats_problem(stats)
        except (TypeError, ValueError, NotImplementedError) as exc:  # not JSON at all
            problem = f"'stats': {exc}"
        if problem is None:
            return stats
        if not self._stats_warned:
            log.warning("%s %r: counters not sent: %s", self.role, self.name, problem)
            self._stats_warned = True
        return None

    def registration(self) -> Register:
        """The ``register`` request this node sends now (its fields, announcements, counters).

        Raises
        ------
        RequestRefused
            The fields cannot be a registration (``code`` ``"bad_request"``).
        """
        return self._build(self._announced)

    def _build(self, announced: list[StreamInfo] | None) -> Register:
        fields = {
            "role": self.role,
            "name": self.name,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            **self._registration(),
        }
        try:
            reg = msgspec.convert(fields, Register)
        except msgspec.ValidationError as exc:
            raise RequestRefused(f"cannot register {self.role} {self.name!r}: {exc}") from None
        if announced is not None:
            owned = set(reg.owned())
            reg = reg.announce([s for s in announced if s.name in owned])
        return msgspec.structs.replace(reg, stats=self._counters())

    def _register(self, req: Requester) -> None:
        announced = self._announced
        reply = req.call(self._build(announced), RegisterReply)
        self.heartbeat = reply.heartbeat if reply.heartbeat > 0 else 1.0
        self.id = reply.id
        self.refused = None
        self.registrations += 1
        if self._announced is announced:  # it carried them (no update() came since)
            self._announce_pending = False
        self.registered.set()
        log.debug("registered %s %r as %s", self.role, self.name, reply.id)

    def _beat(self, req: Requester) -> None:
        assert self.id is not None
        pending = self._announce_pending
        streams = self._announced if pending else None
        sent = time.monotonic()
        beat = Heartbeat(id=self.id, stats=self._counters(), streams=streams)
        reply = req.call(beat, HeartbeatReply)
        if reply.share is not None:
            self.share = (sent, reply.share)
        if pending and streams is self._announced:
            self._announce_pending = False
