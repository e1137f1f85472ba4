"""The proxy's data path: XSUB -> XPUB in zmq's C loop, with libzmq's own counters.

::

    XSUB (publish-in) ==zmq_proxy_steerable (C, own thread)==> XPUB (subscribe-out)
                              ^ REP inproc://zaudio-forwarder-<random>
    stats() --REQ "STATISTICS"--+   (any thread; a fresh REQ socket per call)

libzmq answers ``STATISTICS`` with eight uint64 frames: messages and bytes
received and sent by the frontend (XSUB), then by the backend (XPUB). The loop
stays in C; asking costs one inproc round trip, answered between bursts.

libzmq 4.3.5 counts every frame of a multipart message, older versions count
whole messages: :func:`counting_unit` finds out which (once per process, with a
tiny inproc proxy) so the numbers are never mislabelled.
"""

from __future__ import annotations

import functools
import logging
import secrets
import struct
import threading
from dataclasses import asdict, dataclass
from typing import Any, Literal

import zmq

__all__ = ["Forwarder", "ForwarderCounters", "counting_unit"]

log = logging.getLogger(__name__)

Unit = Literal["messages", "frames"]


@dataclass(frozen=True)
class ForwarderCounters:
    """What the forwarding loop counted since it started, per socket and direction.

    ``publish_in`` is the XSUB side (audio in from publishers, subscriptions out
    to them); ``subscribe_out`` the XPUB side (subscriptions in from subscribers,
    audio out to them; one send reaches every matching subscriber). ``unit`` says
    what the message counts count: whole ``messages`` or ``frames``.
    """

    unit: Unit
    publish_in_received: int
    publish_in_received_bytes: int
    publish_in_sent: int
    publish_in_sent_bytes: int
    subscribe_out_received: int
    subscribe_out_received_bytes: int
    subscribe_out_sent: int
    subscribe_out_sent_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _decode(frames: list[bytes], unit: Unit) -> ForwarderCounters | None:
    if len(frames) != 8 or any(len(f) != 8 for f in frames):
        return None
    values = [struct.unpack("=Q", f)[0] for f in frames]
    return ForwarderCounters(unit, *values)


def _ask(ctx: zmq.Context[Any], address: str, timeout: float) -> list[bytes] | None:
    """One STATISTICS round trip on a REQ socket of the calling thread; None on failure."""
    try:
        req: zmq.Socket[Any] = ctx.socket(zmq.REQ)
    except zmq.ZMQError:  # the context is closing
        return None
    try:
        req.linger = 0
        req.rcvtimeo = req.sndtimeo = int(timeout * 1000)
        req.connect(address)
        req.send(b"STATISTICS")
        return list(req.recv_multipart())
    except zmq.ZMQError:
        return None
    finally:
        req.close(0)


@functools.cache
def counting_unit() -> Unit:
    """Whether this libzmq's proxy counts ``messages`` or ``frames`` (probed once)."""
    ctx: zmq.Context[Any] = zmq.Context()
    unit: Unit = "messages"
    try:
        front, back, sink, ctl = (ctx.socket(k) for k in (zmq.PULL, zmq.PUSH, zmq.PULL, zmq.REP))
        for s in (front, back, sink, ctl):
            s.linger = 0
        tag = secrets.token_hex(4)
        front.bind(f"inproc://zaudio-probe-in-{tag}")
        sink.bind(f"inproc://zaudio-probe-out-{tag}")
        back.connect(f"inproc://zaudio-probe-out-{tag}")
        ctl.bind(f"inproc://zaudio-probe-ctl-{tag}")
        thread = threading.Thread(
            target=_run, args=(front, back, ctl), name="zaudio-probe", daemon=True
        )
        thread.start()
        push = ctx.socket(zmq.PUSH)
        push.linger = 0
        push.connect(f"inproc://zaudio-probe-in-{tag}")
        push.send_multipart([b"a", b"b"])
        sink.rcvtimeo = 2000
        try:
            sink.recv_multipart()
            frames = _ask(ctx, f"inproc://zaudio-probe-ctl-{tag}", 2.0)
        except zmq.Again:
            frames = None
        counters = _decode(frames or [], "messages")
        if counters is not None and counters.publish_in_received == 2:
            unit = "frames"
        push.close(0)
        sink.close(0)
    finally:
        ctx.term()  # wakes the probe loop with ETERM; it closes its sockets
    return unit


def _run(front: zmq.Socket[Any], back: zmq.Socket[Any], ctl: zmq.Socket[Any]) -> None:
    try:
        zmq.proxy_steerable(front, back, None, ctl)
    except zmq.ContextTerminated:
        pass
    except zmq.ZMQError as exc:  # pragma: no cover - only on libzmq failure
        log.error("forwarder stopped: %s", exc)
    finally:
        for s in (front, back, ctl):
            s.close(0)


class Forwarder:
    """The forwarding loop between two bound sockets, and its counters on demand.

    The sockets are made by the caller and handed over: from :meth:`start` on,
    only the loop thread touches them (it closes them when the context is
    terminated). :meth:`counters` may be called from any thread.
    """

    def __init__(self, ctx: zmq.Context[Any], xsub: zmq.Socket[Any], xpub: zmq.Socket[Any]) -> None:
        self.unit = counting_unit()
        self._ctx = ctx
        self._sockets = (xsub, xpub)
        self.address = f"inproc://zaudio-forwarder-{secrets.token_hex(8)}"
        ctl: zmq.Socket[Any] = ctx.socket(zmq.REP)
        ctl.linger = 0
        ctl.bind(self.address)
        self._ctl = ctl

    def start(self) -> threading.Thread:
        """Start the loop in a daemon thread and return it."""
        xsub, xpub = self._sockets
        thread = threading.Thread(
            target=_run, args=(xsub, xpub, self._ctl), name="zaudio-forward", daemon=True
        )
        thread.start()
        return thread

    def counters(self, timeout: float = 1.0) -> ForwarderCounters | None:
        """The loop's counters now; None if it does not answer within ``timeout`` s."""
        return _decode(_ask(self._ctx, self.address, timeout) or [], self.unit)
