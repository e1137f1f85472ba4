"""The proxy: an XSUB -> XPUB forwarder (zmq's C loop) plus the REP control channel.

::

    publishers --PUB--> XSUB :P+1 ==zmq_proxy_steerable (C, own thread)==> XPUB :P+2 --> SUB subscribers
    nodes ------REQ---> REP  :P   --> Registry (hello, register, heartbeat, disconnect, list, time)

The data path never waits on the control channel: they run in separate threads
and share nothing but the context. The forwarder's own counters (messages and
bytes each way, see :mod:`zaudio.forwarder`) are in the ``list`` reply.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
from typing import Any

import zmq

from zaudio._version import __version__
from zaudio.errors import RemoteProtocolError, RequestError, ZaudioError
from zaudio.forwarder import Forwarder
from zaudio.protocol import MAX_HEADER, MAX_PAYLOAD, READY, decode_json, encode_json
from zaudio.registry import Registry
from zaudio.security import Keys

__all__ = ["READY", "Proxy"]

log = logging.getLogger(__name__)

#: Per-subscriber and per-publisher queue bounds on the proxy (messages).
HWM = 10_000
_MAX_REQUEST = 1024 * 1024


def _is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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
    ) -> None:
        self.host = host
        self.port = port
        self.pub_port = pub_port if pub_port is not None else (port + 1 if port else 0)
        self.sub_port = sub_port if sub_port is not None else (port + 2 if port else 0)
        self.keys = keys
        self.hwm = hwm
        self.max_message = max_message
        self.registry = Registry(heartbeat)
        self.requests = 0
        self.bad_requests = 0
        self.started = 0.0
        self.control = self.pub = self.sub = ""
        self._ctx: zmq.Context[Any] | None = None
        self._auth: Any = None
        self._threads: list[threading.Thread] = []
        self.forwarder: Forwarder | None = None

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
            rep = self._socket(made, zmq.REP, self.port, "control", _MAX_REQUEST)
            self.forwarder = Forwarder(ctx, xsub, xpub)
        except BaseException:
            for sock in made:  # ctx.term() waits for every open socket
                sock.close(0)
            self._close_context()
            raise
        self.control = _endpoint(rep)
        self.pub = _endpoint(xsub)
        self.sub = _endpoint(xpub)
        xsub.send(b"\x01" + READY)
        self.started = time.time()
        self._threads = [
            self.forwarder.start(),
            threading.Thread(target=self._serve, args=(rep,), name="zaudio-control", daemon=True),
        ]
        self._threads[1].start()
        if not _is_loopback(self.host) and self.keys is None:
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

    def _serve(self, rep: zmq.Socket[Any]) -> None:
        try:
            while True:
                if rep.poll(250):
                    frames = rep.recv_multipart()
                    reply = self.handle(frames, time.time())
                    rep.send(encode_json(reply))
                for node in self.registry.expire(time.time()):
                    log.info(
                        "%s %r (id %s) missed %d heartbeats: dropped",
                        node.role,
                        node.name,
                        node.id,
                        3,
                    )
        except zmq.ContextTerminated:
            pass
        finally:
            rep.close(0)

    # -- control channel ---------------------------------------------------

    def handle(self, frames: list[bytes], now: float) -> dict[str, Any]:
        """Serve one control request (frames as received) and return the reply object."""
        self.requests += 1
        try:
            if len(frames) != 1:
                raise RequestError(f"a request is one JSON frame, got {len(frames)} frames")
            try:
                req = decode_json(frames[0])
            except RemoteProtocolError:
                raise RequestError("request is not valid JSON: send one JSON object") from None
            if not isinstance(req, dict):
                raise RequestError("request must be a JSON object with an 'op' field")
            op = req.get("op")
            if not isinstance(op, str):
                raise RequestError("missing field 'op': one of " + ", ".join(sorted(_OPS)))
            handler = _OPS.get(op)
            if handler is None:
                raise RequestError(
                    f"unknown op {op!r}: use one of " + ", ".join(sorted(_OPS)), "unknown_op"
                )
            self.registry.expire(now)
            reply: dict[str, Any] = handler(self, req, now)
            return reply
        except RequestError as exc:
            self.bad_requests += 1
            return {"ok": False, "error": str(exc), "code": exc.code}
        except Exception as exc:  # the control channel must always answer
            self.bad_requests += 1
            log.exception("control request failed")
            return {"ok": False, "error": f"internal error: {exc}", "code": "internal"}

    def _hello(self, req: dict[str, Any], now: float) -> dict[str, Any]:
        return {
            "ok": True,
            "protocol": 1,
            "version": __version__,
            "pub": self.pub,
            "sub": self.sub,
            "time": now,
            "heartbeat": self.registry.heartbeat,
        }

    def _list(self, req: dict[str, Any], now: float) -> dict[str, Any]:
        reply = self.registry.listing(now)
        reply["proxy"] = {
            "version": __version__,
            "pid": os.getpid(),
            "control": self.control,
            "pub": self.pub,
            "sub": self.sub,
            "since": self.started,
            "requests": self.requests,
            "bad_requests": self.bad_requests,
        }
        counters = self.forwarder.counters(0.5) if self.forwarder is not None else None
        if counters is not None:
            reply["proxy"]["forwarded"] = counters.as_dict()
        return reply

    def _time(self, req: dict[str, Any], now: float) -> dict[str, Any]:
        return {"ok": True, "time": now}


_OPS: dict[str, Any] = {
    "hello": Proxy._hello,
    "register": lambda self, req, now: self.registry.register(req, now),
    "heartbeat": lambda self, req, now: self.registry.heartbeat_op(req, now),
    "disconnect": lambda self, req, now: self.registry.disconnect(req, now),
    "list": Proxy._list,
    "time": Proxy._time,
}
