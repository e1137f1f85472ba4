"""The data half of a federation link (zaudio.federation): four sockets in one thread.

::

          hub subscribe-out (XPUB)                 hub publish-in (XSUB)
                 |  ^ subscriptions (upstream())        ^  | the hub's subscriptions
      data       v  |                          own only |  v
            [down: XSUB] --drop own--> [into: XPUB]   [up: XPUB] <--own?-- [tap: SUB]
                                          |  ^ the site's subscriptions        ^
                                          v  |                                 |
                       site publish-in (XSUB, inproc) ==C forwarder==> site subscribe-out (XPUB, inproc)

Local traffic never passes here: the site's own forwarder (zmq's C loop) is
untouched; only messages that cross the link are touched by Python. What is
subscribed each way is :mod:`zaudio.interest`. A message from the hub whose
stream the site owns is dropped and counted (``echoed``); a message that does
not fit a full queue is counted (``dropped``: both XPUBs use ``XPUB_NODROP``).
A monitor on each hub connection tells whether the link is up (a ZMTP handshake
with the hub succeeded, and no disconnection since); ZeroMQ's own
heartbeats on them notice a dead connection within about one heartbeat and
ZeroMQ reconnects (every 0.1 s), replaying the subscriptions each way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq
from zmq.utils.monitor import parse_monitor_message

from zaudio import interest
from zaudio.security import Keys

__all__ = ["DataLink"]

log = logging.getLogger(__name__)

_BATCH = 256  # messages moved per socket per wake-up, so no direction starves another
_TICK = 100  # ms: how often the subscriptions are recomputed (ownership changes)
# connected = the ZMTP handshake with the hub succeeded (a TCP connect alone may reach
# only a relay or a NAT in between)
_EVENTS = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED
COUNTERS = ("received", "received_bytes", "sent", "sent_bytes", "echoed", "dropped")


class DataLink:
    """Moves the streams that cross the link; owned by its own thread.

    Parameters
    ----------
    ctx : zmq.Context
        The site proxy's context (the two inproc endpoints live in it).
    site_in, site_out : str
        Inproc endpoints bound on the site's XSUB and XPUB.
    own : callable
        Whether a topic is the site's own (:func:`zaudio.interest.owner_check`).
    state : callable
        Called with ``(down_connected, up_connected)`` whenever either changes.

    The control side sets :attr:`endpoints` (the hub's pub and sub, once
    ``hello`` answered) and :attr:`remote` (exact topics owned elsewhere).
    """

    def __init__(
        self,
        ctx: zmq.Context[Any],
        site_in: str,
        site_out: str,
        own: interest.Own,
        state: Callable[[bool, bool], None],
        *,
        keys: Keys | None = None,
        hwm: int = 10_000,
        heartbeat: float = 1.0,
    ) -> None:
        self._ctx = ctx
        self.site_in = site_in
        self.site_out = site_out
        self.own = own
        self._state = state
        self.keys = keys
        self.hwm = hwm
        self.heartbeat = heartbeat
        self.endpoints: tuple[str, str] | None = None
        self.remote: frozenset[bytes] = frozenset()
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.site: set[bytes] = set()  # the site's subscriptions
        self.hub: set[bytes] = set()  # the hub's subscriptions
        self.up: set[bytes] = set()  # what we hold at the hub
        self.taps: set[bytes] = set()  # the tap's local subscriptions
        self._leaving: set[bytes] = set()  # tap subscriptions dropped, not yet gone from site
        self._connected = [False, False]

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="zaudio-link", daemon=True)
        thread.start()
        return thread

    # -- the thread --------------------------------------------------------

    def _socket(self, kind: int, hub: bool = False) -> zmq.Socket[Any]:
        sock: zmq.Socket[Any] = self._ctx.socket(kind)
        sock.linger = 0
        sock.sndhwm = sock.rcvhwm = self.hwm
        if kind == zmq.XPUB:
            sock.setsockopt(zmq.XPUB_NODROP, 1)
        if hub:
            ivl = max(100, int(self.heartbeat * 500))
            sock.setsockopt(zmq.HEARTBEAT_IVL, ivl)
            sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 2 * ivl)
            if self.keys is not None:
                self.keys.client_socket(sock)
        return sock

    def _run(self) -> None:
        into = self._socket(zmq.XPUB)
        tap = self._socket(zmq.SUB)
        made = [into, tap]
        try:
            into.connect(self.site_in)
            tap.connect(self.site_out)
            poller = zmq.Poller()
            for s in (into, tap):
                poller.register(s, zmq.POLLIN)
            while self.endpoints is None:  # the control side's hello
                if poller.poll(50):
                    self._subscriptions(into, self.site)
            down = self._socket(zmq.XSUB, hub=True)
            up = self._socket(zmq.XPUB, hub=True)
            made += [down, up]
            monitors = [down.get_monitor_socket(_EVENTS), up.get_monitor_socket(_EVENTS)]
            made += monitors
            pub, sub = self.endpoints
            down.connect(sub)
            up.connect(pub)
            for s in (down, up, *monitors):
                poller.register(s, zmq.POLLIN)
            self._loop(poller, into, tap, down, up, monitors)
        except zmq.ContextTerminated:
            pass
        except zmq.ZMQError as exc:  # pragma: no cover - only on libzmq failure
            log.error("federation link stopped: %s", exc)
        finally:
            for s in made:
                s.close(0)

    def _loop(
        self,
        poller: zmq.Poller,
        into: zmq.Socket[Any],
        tap: zmq.Socket[Any],
        down: zmq.Socket[Any],
        up: zmq.Socket[Any],
        monitors: list[zmq.Socket[Any]],
    ) -> None:
        c = self.counters
        due = 0.0
        while True:
            changed = False
            for sock, _ in poller.poll(_TICK):
                if sock is down:
                    for _ in range(_BATCH):
                        try:
                            frames = down.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        if self.own(frames[0].bytes):
                            c["echoed"] += 1  # our own stream back from the hub: never twice
                        elif self._send(into, frames):
                            c["received"] += 1
                            c["received_bytes"] += sum(len(f) for f in frames)
                elif sock is tap:
                    for _ in range(_BATCH):
                        try:
                            frames = tap.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        # only the site's own streams go up, never what came from the hub
                        if self.own(frames[0].bytes) and self._send(up, frames):
                            c["sent"] += 1
                            c["sent_bytes"] += sum(len(f) for f in frames)
                elif sock is into:
                    changed = self._subscriptions(into, self.site) or changed
                elif sock is up:
                    changed = self._subscriptions(up, self.hub) or changed
                else:
                    self._monitor(sock, monitors.index(sock))
            # at once when a subscription set changed, else every tick (ownership, remote)
            now = time.monotonic()
            if changed or now >= due:
                due = now + _TICK / 1000
                self._resubscribe(tap, down)

    def _send(self, sock: zmq.Socket[Any], frames: list[Any]) -> bool:
        try:
            sock.send_multipart(frames, zmq.NOBLOCK, copy=False)
            return True
        except zmq.Again:  # a full queue (XPUB_NODROP): counted, never silent
            self.counters["dropped"] += 1
            return False

    def _subscriptions(self, sock: zmq.Socket[Any], held: set[bytes]) -> bool:
        """Read (un)subscription messages from an XPUB into ``held``; True if any."""
        for _ in range(_BATCH):
            try:
                msg = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return True
            if msg[:1] == b"\x01":
                held.add(msg[1:])
            elif msg[:1] == b"\x00":
                held.discard(msg[1:])
                self._leaving.discard(msg[1:])  # a tap subscription is gone from the site
        return True

    def _monitor(self, mon: zmq.Socket[Any], which: int) -> None:
        event = parse_monitor_message(mon.recv_multipart())["event"]
        connected = event == zmq.EVENT_HANDSHAKE_SUCCEEDED
        if connected != self._connected[which]:
            self._connected[which] = connected
            self._state(*self._connected)

    def _resubscribe(self, tap: zmq.Socket[Any], down: zmq.Socket[Any]) -> None:
        """Bring the tap's and the downlink's subscriptions to what they should be now."""
        remote = self.remote
        forms = interest.tap(self.hub, self.own, set(remote))
        for form in forms - self.taps:
            tap.subscribe(form)
        for form in self.taps - forms:
            tap.unsubscribe(form)
            self._leaving.add(form)
        self.taps = forms
        wanted = interest.upstream(self.site, forms | self._leaving, self.own, remote)
        for prefix in wanted - self.up:
            down.send(b"\x01" + prefix)
        for prefix in self.up - wanted:
            down.send(b"\x00" + prefix)
        self.up = wanted
