"""A site proxy joined to a hub proxy: ``zaudio proxy --upstream tcp://HUB:5555``.

The hub is an ordinary proxy. The site keeps its own forwarder for local
traffic and adds a link with two halves:

- **data** (:mod:`zaudio.links`, :mod:`zaudio.interest`): the streams someone at
  the site subscribed to come down from the hub once, however many local
  subscribers there are; the site's own streams the hub's subscribers want go
  up; nothing goes back where it came from.
- **control** (this module, its own thread and a DEALER socket to the hub's
  control port, requests pipelined): every node registered at the site is
  mirrored at the hub (``register`` with ``origin``: the site's name, then a
  heartbeat per hub heartbeat), so the hub's ``list`` shows it and the hub's
  registry holds its stream names; each round ends with the hub's ``list``,
  whose nodes and streams not mirrored from here the site adds to its own
  ``list`` (with ``via``: the hub's name) and refuses as stream names
  (:attr:`Registry.remote`). A mirror the hub refuses (another site took the
  name first) evicts the local node: its next heartbeat gets ``unknown_id``,
  its next ``register`` the ownership error.
- **clock**: the site measures its offset to the hub's clock as a node does
  and answers ``time`` in the hub's time base, so offsets chain.

The link is up while both data connections to the hub are (``losses`` counts
the times it went down, ``reconnects`` the times it came back, ``timeouts`` the
control rounds the hub did not answer in time); it comes back by itself:
ZeroMQ reconnects the data sockets and replays the subscriptions each way, and
the mirrors register again if the hub forgot them.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any

import msgspec
import zmq

from zaudio import interest
from zaudio.client import CLOCK_RESYNC, best_offset
from zaudio.control import (
    Disconnect,
    ErrorReply,
    Heartbeat,
    Hello,
    HelloReply,
    List,
    ListReply,
    OkReply,
    Register,
    RegisterReply,
    StreamInfo,
    Time,
    TimeReply,
    decode_reply,
    encode,
)
from zaudio.endpoints import control_endpoint, resolve
from zaudio.errors import ProxyError, ProxyUnreachable, RequestRefused
from zaudio.links import DataLink
from zaudio.names import AUDIO, RESULT
from zaudio.registry import Registry
from zaudio.security import Keys

__all__ = ["Federation"]

log = logging.getLogger(__name__)

TIMEOUT = 1.0  # seconds to wait for the hub's replies to one round
_Mirror = tuple[str, Register]  # (local node id, its registration with its counters)


class Federation:
    """The link of a site proxy to its hub (both halves, and what ``list`` shows of it).

    Made by :class:`zaudio.proxy.Proxy` with ``upstream``; the proxy binds
    :attr:`site_in` and :attr:`site_out` on its XSUB and XPUB, calls
    :meth:`offer` from its control thread, :meth:`merge` and :meth:`info` for
    ``list``, and reads :attr:`offset` for ``time``.
    """

    def __init__(
        self,
        ctx: zmq.Context[Any],
        upstream: str,
        registry: Registry,
        *,
        keys: Keys | None = None,
        hwm: int = 10_000,
    ) -> None:
        import secrets

        self.endpoint = control_endpoint(upstream)
        self.registry = registry
        self.keys = keys
        tag = secrets.token_hex(6)
        self.site_in = f"inproc://zaudio-upstream-in-{tag}"
        self.site_out = f"inproc://zaudio-upstream-out-{tag}"
        own = interest.owner_check(registry.owns, registry.processes)
        self.data = DataLink(
            ctx, self.site_in, self.site_out, own, self._data_state,
            keys=keys, hwm=hwm, heartbeat=registry.heartbeat,
        )  # fmt: skip
        #: hub clock minus this process's clock (clock.now()), seconds
        self.offset = 0.0
        self.rtt: float | None = None
        self.hub = ""  # the hub's name, from its list
        self.heartbeat = 1.0  # the hub's
        self.remote_nodes: list[Any] = []
        self.remote_streams: list[Any] = []
        self.mirrors: dict[str, str] = {}  # local node id -> its id at the hub
        self._announced: dict[str, list[StreamInfo]] = {}  # local id -> streams told the hub
        self._offered: list[_Mirror] = []
        self._evict: collections.deque[tuple[str, str]] = collections.deque()
        self.up = False
        self.losses = self.reconnects = self.conflicts = self.rounds = self.timeouts = 0
        self.error: str | None = None
        self._links = [False, False]  # data connections down, up
        self._ever_up = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the proxy's side (its control thread) -----------------------------

    def start(self) -> list[threading.Thread]:
        self._thread = threading.Thread(target=self._run, name="zaudio-upstream", daemon=True)
        self._thread.start()
        return [self._thread, self.data.start()]

    def stop(self) -> None:
        """Stop the control thread (the data thread stops with the proxy's context)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(TIMEOUT + 1)

    def offer(self) -> None:
        """Hand the link the site's nodes now; evict those the hub refused."""
        while self._evict:
            local, why = self._evict.popleft()
            node = self.registry.evict(local)
            if node is not None:
                log.warning("hub refused %s %r, evicted here: %s", node.role, node.name, why)
        old = self._offered
        offered = [
            (n.id, msgspec.structs.replace(n.registration, stats=n.stats, group=None))
            for n in self.registry.nodes.values()
        ]
        self._offered = offered
        if [(i, r.owned()) for i, r in old] != [(i, r.owned()) for i, r in offered]:
            self._wake.set()  # a node came, left or announced streams: tell the hub now

    def merge(self, listed: ListReply) -> ListReply:
        """``listed`` (this registry's) plus what the hub knows from elsewhere."""
        return msgspec.structs.replace(
            listed,
            nodes=[*listed.nodes, *self.remote_nodes],
            streams=[*listed.streams, *self.remote_streams],
        )

    def info(self) -> dict[str, Any]:
        """The link as ``list``'s ``proxy.upstream`` shows it."""
        d = self.data
        return {
            "endpoint": self.endpoint,
            "hub": self.hub,
            "up": self.up,
            "losses": self.losses,
            "reconnects": self.reconnects,
            "timeouts": self.timeouts,
            "offset": round(self.offset, 6),
            "rtt": round(self.rtt, 6) if self.rtt is not None else None,
            "mirrored": len(self.mirrors),
            "conflicts": self.conflicts,
            "remote_streams": len(self.remote_streams),
            "subscriptions_up": len(d.up),
            "subscriptions_hub": sum(1 for p in d.hub if interest.is_data(p)),
            # what the hub's subscribers want of the federation (at most 32 shown)
            "hub_topics": sorted(
                p.decode("ascii", "replace") for p in d.hub if interest.is_data(p)
            )[:32],
            **d.counters,
            "error": self.error,
        }

    # -- link state --------------------------------------------------------

    def _data_state(self, down: bool, up: bool) -> None:
        self._links = [down, up]
        self._update()

    def _update(self) -> None:
        with self._lock:
            up = all(self._links)
            if up == self.up:
                return
            self.up = up
            if up:
                self.reconnects += self._ever_up
                self._ever_up = True
                log.info("upstream %s (hub %r) is up", self.endpoint, self.hub)
            else:
                self.losses += 1
                log.warning("upstream %s lost: %s", self.endpoint, self.error or "disconnected")

    # -- the control thread ------------------------------------------------

    def _run(self) -> None:
        ctx: zmq.Context[Any] = zmq.Context()
        self._ctx = ctx
        self._sock: zmq.Socket[Any] | None = None
        next_sync, backoff = 0.0, 0.1
        try:
            while not self._stop.is_set():
                try:
                    if self.data.endpoints is None:
                        hello = self._call(Hello(), HelloReply)
                        self.heartbeat = hello.heartbeat if hello.heartbeat > 0 else 1.0
                        self.data.endpoints = (
                            resolve(hello.pub, self.endpoint),
                            resolve(hello.sub, self.endpoint),
                        )
                    if time.monotonic() >= next_sync:
                        self._measure()
                        next_sync = time.monotonic() + CLOCK_RESYNC
                    again = self._round()
                    self.error, backoff = None, 0.1
                    wait = 0.0 if again else self.heartbeat
                except ProxyError as exc:  # unanswered or refused: counted, retried
                    self.error = str(exc)
                    self.timeouts += 1
                    wait, backoff = backoff, min(backoff * 2, self.heartbeat)
                self._wake.wait(wait)
                self._wake.clear()
            self._leave()
        finally:
            if self._sock is not None:
                self._sock.close(0)
            ctx.term()

    def _exchange(self, requests: list[msgspec.Struct]) -> list[bytes]:
        """Send every request at once (DEALER), return the reply frames in order."""
        if self._sock is None:
            sock: zmq.Socket[Any] = self._ctx.socket(zmq.DEALER)
            sock.linger = 0
            if self.keys is not None:
                self.keys.client_socket(sock)
            sock.connect(self.endpoint)
            self._sock = sock
        sock = self._sock
        for req in requests:
            sock.send_multipart([b"", encode(req)])
        replies: list[bytes] = []
        deadline = time.monotonic() + TIMEOUT
        while len(replies) < len(requests):
            left = deadline - time.monotonic()
            if left <= 0 or not sock.poll(int(left * 1000) + 1):
                sock.close(0)  # lazy pirate: a fresh socket never gets a stale reply
                self._sock = None
                raise ProxyUnreachable(
                    f"the hub at {self.endpoint} did not answer within {TIMEOUT:g} s"
                )
            frames = sock.recv_multipart()
            if len(frames) >= 2 and not frames[0]:
                replies.append(frames[1])
        return replies

    def _call(self, req: msgspec.Struct, kind: type[Any]) -> Any:
        reply = decode_reply(self._exchange([req])[0], kind)
        if isinstance(reply, ErrorReply):
            raise RequestRefused(f"the hub refused {type(req).__name__.lower()}: {reply.error}")
        return reply

    def _measure(self) -> None:
        self.offset, self.rtt = best_offset(lambda: self._call(Time(), TimeReply).time)

    def _round(self) -> bool:
        """Mirror the site's nodes at the hub and learn the hub's; True to go again at once."""
        offered = self._offered
        live = {i for i, _ in offered}
        requests: list[msgspec.Struct] = []
        what: list[tuple[str, str]] = []
        for local, reg in offered:
            hub_id = self.mirrors.get(local)
            if hub_id is None:
                requests.append(
                    msgspec.structs.replace(reg, origin=reg.origin or self.registry.name)
                )
                what.append(("register", local))
            else:
                told = self._announced.get(local)
                streams = reg.streams if told != reg.streams else None
                requests.append(Heartbeat(id=hub_id, stats=reg.stats, streams=streams))
                what.append(("beat", local))
        for local, hub_id in self.mirrors.items():
            if local not in live:
                requests.append(Disconnect(id=hub_id))
                what.append(("gone", local))
        requests.append(List())
        replies = self._exchange(requests)
        self.rounds += 1
        again = False
        regs = dict(offered)
        for (op, local), frame in zip(what, replies[:-1], strict=True):
            again |= self._handled(op, local, regs.get(local), frame)
        self._learn(replies[-1])
        return again

    def _handled(self, op: str, local: str, reg: Register | None, frame: bytes) -> bool:
        if op == "gone":
            self.mirrors.pop(local, None)
            self._announced.pop(local, None)
            return False
        reply = decode_reply(frame, RegisterReply if op == "register" else OkReply)
        if isinstance(reply, RegisterReply):
            self.mirrors[local] = reply.id
            self._announced[local] = reg.streams if reg is not None else []
        elif isinstance(reply, ErrorReply):
            if reply.code == "unknown_id":  # the hub forgot it (restarted, or the link was out)
                self.mirrors.pop(local, None)
                return True
            if reply.code == "stream_taken":
                self.conflicts += 1
                self._evict.append((local, reply.error))
            elif reply.code != "rate_limited":
                self.error = reply.error
        elif reg is not None:
            self._announced[local] = reg.streams
        return False

    def _learn(self, frame: bytes) -> None:
        reply = decode_reply(frame, ListReply)
        if isinstance(reply, ErrorReply):
            return
        self.hub = reply.proxy.name if reply.proxy is not None else ""
        ours = set(self.mirrors.values())
        via = self.hub or self.endpoint
        nodes = [n for n in reply.nodes if n.id not in ours]
        by_id = {n.id: n for n in nodes}
        streams = [s for s in reply.streams if s.node not in ours]
        self.remote_nodes = [
            msgspec.structs.replace(n, origin=n.origin or via, via=via) for n in nodes
        ]
        self.remote_streams = [
            msgspec.structs.replace(s, origin=s.origin or via, via=via) for s in streams
        ]
        owners = {}
        for s in streams:
            n = by_id.get(s.node)
            who = f"{n.role} {n.name!r} (pid {n.pid} on {n.host})" if n else "another node"
            owners[s.name] = f"{who} at proxy {s.origin or via!r}"
        for n in nodes:
            for name in n.outputs:
                owners.setdefault(name, f"{n.role} {n.name!r} at proxy {n.origin or via!r}")
        self.registry.remote = owners
        topics = {AUDIO + name.encode() + b"\0" for name in owners}
        topics |= {RESULT + n.name.encode() + b"\0" for n in nodes if n.role == "processor"}
        self.data.remote = frozenset(topics)

    def _leave(self) -> None:
        """On shutdown: disconnect every mirror (one round, short wait)."""
        if not self.mirrors or self._sock is None:
            return
        try:
            self._exchange([Disconnect(id=h) for h in self.mirrors.values()])
        except ProxyError:
            pass
        self.mirrors.clear()
