"""The proxy: an XSUB -> XPUB forwarder (zmq's C loop) plus the control channel.

::

    publishers --PUB--> XSUB :P+1 ==zmq_proxy_steerable (C, own thread)==> XPUB :P+2 --> SUB
    nodes ------REQ---> ROUTER :P --> control (decode) --> Registry (register, heartbeat, ...)
                                                    +--> History (op "history", with --history)

The data path never waits on the control channel: they run in separate threads
and share nothing but the context. The forwarder's own counters (messages and
bytes each way, see :mod:`zaudio.forwarder`) are in the ``list`` reply. The
control socket is a ROUTER that answers each REQ peer exactly as a REP socket
would; it knows which connection sent a request, so each peer has its own
request limit (zaudio.limits). With ``history`` set, the XPUB also binds an
inproc endpoint the store of :mod:`zaudio.history` subscribes to; its
``history`` reply is the JSON frame, then the kept messages' frames.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import msgspec
import zmq

from zaudio import clock
from zaudio._version import __version__
from zaudio.control import (
    MAX_REQUEST,
    ErrorReply,
    Heartbeat,
    Hello,
    HelloReply,
    History,
    HistoryReply,
    List,
    RateLimited,
    Register,
    Time,
    TimeReply,
    decode_request,
    encode,
    split_envelope,
)
from zaudio.cutoffs import PublisherWatch
from zaudio.endpoints import is_loopback
from zaudio.errors import RequestError, ZaudioError
from zaudio.federation import Federation
from zaudio.forwarder import Forwarder
from zaudio.groups import Groups
from zaudio.history import DEFAULT_BYTES
from zaudio.history import History as Store
from zaudio.limits import BURST, LIST_ENTRIES_PER_TOKEN, RATE, PeerLimiter
from zaudio.protocol import MAX_HEADER, MAX_PAYLOAD, READY
from zaudio.proxylist import listing
from zaudio.registry import MISSES, Registry
from zaudio.security import Keys

__all__ = ["READY", "Proxy"]

log = logging.getLogger(__name__)

#: Per-subscriber and per-publisher queue bounds on the proxy (messages).
HWM = 10_000
_SWEEP = 0.1  # seconds between expiry sweeps (requests check expiry themselves)


def _endpoint(sock: zmq.Socket[Any]) -> str:
    return str(sock.getsockopt_string(zmq.LAST_ENDPOINT))


class Proxy:
    """A zaudio proxy, usable from Python and tests.

    Parameters
    ----------
    host : str
        Interface to bind; loopback by default.
    port : int
        Control port; 0 picks free ports for all three sockets.
    pub_port, sub_port : int, optional
        Data ports; ``port + 1`` and ``port + 2`` by default.
    keys : Keys, optional
        CurveZMQ server keys: every socket then admits only authorized clients.
    heartbeat : float
        Seconds between heartbeats nodes are asked to send.
    hwm : int
        Queue bound per publisher and per subscriber, in messages.
    max_message : int
        Largest frame a publisher may send; one over it cuts the publisher off.
    request_rate, request_burst : float
        Control requests each connection may send per second, and at once
        (see zaudio.limits); beyond them the reply is ``code: "rate_limited"``.
    history : float, optional
        Keep the last this many seconds of every audio stream for late joiners
        (op ``history``, :mod:`zaudio.history`); off by default.
    history_bytes : int
        The bound of everything kept, in bytes (256 MiB by default).
    name : str, optional
        This proxy's name in ``list`` (``origin``); ``HOSTNAME:PORT`` by default.
    upstream : str, optional
        A hub proxy's control endpoint to federate with (:mod:`zaudio.federation`),
        reached with ``upstream_keys`` (CurveZMQ client keys) if given.

    Examples
    --------
    >>> with Proxy(port=0) as proxy:          # doctest: +SKIP
    ...     print(proxy.control)
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 5555,
        pub_port: int | None = None,
        sub_port: int | None = None,
        keys: Keys | None = None,
        heartbeat: float = 1.0,
        hwm: int = HWM,
        max_message: int = MAX_PAYLOAD + MAX_HEADER,
        request_rate: float = RATE,
        request_burst: float = BURST,
        history: float | None = None,
        history_bytes: int = DEFAULT_BYTES,
        name: str | None = None,
        upstream: str | None = None,
        upstream_keys: Keys | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.pub_port = pub_port if pub_port is not None else (port + 1 if port else 0)
        self.sub_port = sub_port if sub_port is not None else (port + 2 if port else 0)
        self.keys = keys
        self.hwm = hwm
        self.max_message = max_message
        self.name = name or f"{socket.gethostname()}:{port}"
        self.registry = Registry(heartbeat, self.name)
        self.groups = Groups(heartbeat)
        self.limiter = PeerLimiter(request_rate, request_burst)
        self.requests = 0
        self.bad_requests = 0
        self.started = 0.0
        self.control = self.pub = self.sub = ""
        self._ctx: zmq.Context[Any] | None = None
        self._auth: Any = None
        self._threads: list[threading.Thread] = []
        self.forwarder: Forwarder | None = None
        self.watch: PublisherWatch | None = None
        self.history_seconds = history
        self.history_bytes = history_bytes
        self.history: Store | None = None
        self._attached: list[Any] = []  # frames after the JSON reply (op "history")
        self.upstream = upstream
        self.upstream_keys = upstream_keys
        self.federation: Federation | None = None
        self.skew = clock.SKEW  # ZAUDIO_CLOCK_SKEW: a wrong clock, on purpose (test hook)

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Proxy:
        """Bind the three sockets and start the forwarder and control threads.

        The data ports are bound first: a proxy that answers on its control port
        always has its data path. Any port that cannot be bound fails at once
        (:class:`ZaudioError` naming it), with every socket already made closed.
        """
        ctx: zmq.Context[Any] = zmq.Context()
        self._ctx = ctx
        made: list[zmq.Socket[Any]] = []
        try:
            if self.keys is not None:
                from zmq.auth.thread import ThreadAuthenticator

                self._auth = ThreadAuthenticator(ctx, log=logging.getLogger("zaudio.auth"))
                self._auth.start()
                self._auth.configure_curve(domain="*", location=str(self.keys.authorized))
            xsub = self._socket(made, zmq.XSUB, self.pub_port, "publish-in", self.max_message)
            xpub = self._socket(made, zmq.XPUB, self.sub_port, "subscribe-out")
            ctl = self._socket(made, zmq.ROUTER, self.port, "control", MAX_REQUEST)
            self.forwarder = Forwarder(ctx, xsub, xpub)
            self.pub, self.sub = _endpoint(xsub), _endpoint(xpub)  # before inproc binds
            if self.upstream is not None:
                fed = Federation(ctx, self.upstream, self.registry, keys=self.upstream_keys)
                xsub.bind(fed.site_in)
                xpub.bind(fed.site_out)
                self.federation = fed
            if self.history_seconds is not None:
                inproc = Store.endpoint()
                xpub.bind(inproc)
                self.history = Store(ctx, inproc, self.history_seconds, self.history_bytes)
        except BaseException:
            if self.watch is not None:
                self.watch.close()
            for sock in made:  # ctx.term() waits for every open socket
                sock.close(0)
            self._close_context()
            raise
        self.control = _endpoint(ctl)
        if not self.port and self.name.endswith(":0"):  # the default name gets the bound port
            self.registry.name = self.name = self.name[:-1] + self.control.rsplit(":", 1)[1]
        xsub.send(b"\x01" + READY)
        self.started = time.time()
        self._threads = [
            self.forwarder.start(),
            threading.Thread(target=self._serve, args=(ctl,), name="zaudio-control", daemon=True),
        ]
        self._threads[1].start()
        if self.history is not None:
            self._threads.append(self.history.start())
        if self.federation is not None:
            self._threads += self.federation.start()
        assert self.watch is not None
        self._threads.append(self.watch.start(int(self.pub.rsplit(":", 1)[1])))
        if not is_loopback(self.host) and self.keys is None:
            log.warning(
                "binding %s without --keys: anyone who can reach this host can listen "
                "to and publish on the bus (see docs/deployment.md)",
                self.host,
            )
        return self

    def _socket(
        self,
        made: list[zmq.Socket[Any]],
        kind: int,
        port: int,
        what: str,
        maxmsgsize: int | None = None,
    ) -> zmq.Socket[Any]:
        assert self._ctx is not None
        sock: zmq.Socket[Any] = self._ctx.socket(kind)
        made.append(sock)
        sock.linger = 0
        if kind == zmq.XSUB:
            sock.rcvhwm = self.hwm
        elif kind == zmq.XPUB:
            sock.sndhwm = self.hwm
        if maxmsgsize is not None:
            sock.setsockopt(zmq.MAXMSGSIZE, maxmsgsize)
        if kind == zmq.XSUB:  # before bind: no connection is missed
            self.watch = PublisherWatch(self._ctx, sock, self.max_message)
        if self.keys is not None:
            self.keys.server_socket(sock)
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        if ":" in host:
            sock.setsockopt(zmq.IPV6, 1)
        address = f"tcp://{host}:{port or '*'}"
        try:
            sock.bind(address)
        except zmq.ZMQError as exc:
            raise ZaudioError(
                f"cannot bind the {what} port {address}: {exc.strerror} "
                "(is another proxy running there? pick another --port or --host)"
            ) from exc
        return sock

    def stop(self) -> None:
        """Close every socket and join the threads. Safe to call twice."""
        if self._ctx is None:
            return
        if self.federation is not None:
            self.federation.stop()  # its mirrors leave the hub first
        self._close_context()
        for t in self._threads:
            t.join(timeout=2)
        self._threads = []

    def _close_context(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            # term() wakes both threads with ETERM; each closes its own sockets.
            ctx.term()

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- threads -----------------------------------------------------------

    def _serve(self, ctl: zmq.Socket[Any]) -> None:
        """The control loop: one ROUTER socket that behaves as REP to each REQ peer."""
        next_sweep = 0.0
        try:
            while True:
                wait = max(0.0, next_sweep - time.time())  # sweep every _SWEEP, even idle
                if ctl.poll(int(wait * 1000) + 1):
                    frames = ctl.recv_multipart()
                    envelope, body = split_envelope(frames)
                    if envelope is None:
                        self.requests += 1
                        self.bad_requests += 1  # no REQ envelope: REP would drop it too
                    else:
                        self._attached = []  # what handle() attaches to this reply
                        reply = self.handle(body, time.time(), peer=envelope[0])
                        attached, self._attached = self._attached, []
                        ctl.send_multipart([*envelope, encode(reply), *attached], copy=False)
                now = time.time()
                if now >= next_sweep:
                    next_sweep = now + _SWEEP
                    self._sweep(now)
        except zmq.ContextTerminated:
            pass
        finally:
            ctl.close(0)
            if self.history is not None:
                self.history.close()  # its drain channel is this thread's: term() waits for it

    def _sweep(self, now: float) -> None:
        for node in self.registry.expire(now):
            log.info(
                "%s %r (id %s) missed %d heartbeats: dropped", node.role, node.name, node.id, MISSES
            )
        self.groups.expire(now, self.registry.nodes)
        self.limiter.forget_idle(time.monotonic())
        if self.federation is not None:
            self.federation.offer()

    # -- control channel ---------------------------------------------------

    def handle(self, frames: list[bytes], now: float, peer: bytes = b"") -> msgspec.Struct:
        """Serve one control request (its frames, without the envelope); return the reply."""
        self.requests += 1
        wait = self.limiter.allow(peer, time.monotonic())  # a wall-clock step must not matter
        if wait:
            return RateLimited(
                error=f"too many requests from this connection: at most "
                f"{self.limiter.rate:g} per second; retry in {wait:.3f} s",
                retry_after=round(wait, 3),
            )
        try:
            if len(frames) != 1:
                raise RequestError(f"a request is one JSON frame, got {len(frames)} frames")
            req = decode_request(frames[0])
            if isinstance(req, Hello):
                return self._hello(now)
            if isinstance(req, Time):
                return TimeReply(time=self.clock_time(now))
            if isinstance(req, List):
                reply = listing(self, now)
                entries = len(reply.nodes) + len(reply.streams)
                self.limiter.charge(peer, entries / LIST_ENTRIES_PER_TOKEN)
                return reply
            if isinstance(req, History):
                return self._history(req, peer)
            if isinstance(req, Register):
                self.groups.check(req)
                return self.groups.registered(req, self.registry.register(req, now, peer), now)
            if isinstance(req, Heartbeat):
                return self.groups.beat(req, self.registry.heartbeat_op(req, now), now)
            self.groups.leave(req.id, now)
            return self.registry.disconnect(req, now)
        except RequestError as exc:
            self.bad_requests += 1
            return ErrorReply(error=str(exc), code=exc.code)
        except Exception as exc:  # the control channel must always answer
            self.bad_requests += 1
            log.exception("control request failed")
            return ErrorReply(error=f"internal error: {exc}", code="internal")

    def clock_time(self, now: float) -> float:
        """``now`` (wall clock) in this proxy's time base: the hub's with ``upstream``."""
        return now + self.skew + (self.federation.offset if self.federation is not None else 0.0)

    def _hello(self, now: float) -> HelloReply:
        return HelloReply(
            protocol=1,
            version=__version__,
            pub=self.pub,
            sub=self.sub,
            time=self.clock_time(now),
            heartbeat=self.registry.heartbeat,
        )

    def _history(self, req: History, peer: bytes) -> HistoryReply | ErrorReply:
        """The kept messages of ``req.topics`` (frames in :attr:`_attached`), or "history is off"."""
        if self.history is None:
            return ErrorReply(
                error="this proxy keeps no history: start it with --history D "
                "(e.g. --history 30s) to serve late joiners",
                code="history_off",
            )
        topics = [t.encode() for t in req.topics]
        kept, oldest, reach = self.history.snapshot(topics, req.since)
        self.limiter.charge(peer, len(kept) / LIST_ENTRIES_PER_TOKEN)
        self._attached = [f for k in kept for f in k[1:4]]
        return HistoryReply(
            messages=len(kept),
            oldest=round(oldest, 6),
            seconds=self.history.seconds,
            kept=round(reach, 6),
        )
