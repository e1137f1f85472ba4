"""The proxy's registry of live nodes and the streams they own: pure state, no sockets.

Every public method takes a request already decoded and checked by
:mod:`zaudio.control` and the current time, and returns the reply struct or
raises :class:`~zaudio.errors.RequestError` with a sentence a person can act on.
The proxy turns that into ``{"ok": false, "error": ...}``.

Each operation costs the same whatever the number of nodes (the owner of a
stream is one dict lookup), except :meth:`Registry.listing` and
:meth:`Registry.expire`, which visit every node: a flood of requests cannot make
one of them slower for everyone else.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import msgspec

from zaudio.control import (
    Disconnect,
    Heartbeat,
    ListedStream,
    ListReply,
    NodeInfo,
    OkReply,
    Register,
    RegisterReply,
    StreamInfo,
)
from zaudio.errors import RequestError

__all__ = ["MAX_NODES", "MAX_NODES_PER_PEER", "MISSES", "Node", "Registry"]

MISSES = 3  # heartbeats a node may miss before it is dropped
#: Live nodes the proxy holds at most (each bounded by zaudio.control's limits).
MAX_NODES = 4096
#: Live nodes one peer (one connection to the control socket) may have registered.
MAX_NODES_PER_PEER = 64


@dataclass
class Node:
    """One registered node: what it registered (with what it announced since), and when."""

    id: str
    registration: Register
    since: float
    last_seen: float
    stats: dict[str, Any] = field(default_factory=dict)
    peer: bytes = b""  # the connection that registered it
    origin: str = ""  # the proxy it is registered at (this one, or a site's: federation)
    _listed: tuple[Register, list[ListedStream]] | None = None

    @property
    def role(self) -> str:
        return self.registration.role

    @property
    def name(self) -> str:
        return self.registration.name

    @property
    def host(self) -> str:
        return self.registration.host

    @property
    def pid(self) -> int:
        return self.registration.pid

    @property
    def streams(self) -> list[StreamInfo]:
        return self.registration.streams

    @property
    def topics(self) -> list[str]:
        return self.registration.topics

    @property
    def outputs(self) -> list[str]:
        return self.registration.outputs

    def listed(self) -> list[ListedStream]:
        """Its streams as ``list`` shows them (made once per registration or announcement)."""
        r = self.registration
        if self._listed is None or self._listed[0] is not r:
            streams = [
                ListedStream(s.name, s.rate, s.channels, self.id, self.origin) for s in r.streams
            ]
            self._listed = (r, streams)
        return self._listed[1]

    def info(self) -> NodeInfo:
        r = self.registration
        return NodeInfo(
            id=self.id,
            role=r.role,
            name=r.name,
            host=r.host,
            pid=r.pid,
            streams=r.streams,
            topics=r.topics,
            outputs=r.outputs,
            since=self.since,
            last_seen=self.last_seen,
            stats=self.stats,
            origin=self.origin,
        )


class Registry:
    """Live nodes, the stream names they own, and their expiry.

    Parameters
    ----------
    heartbeat : float
        Seconds between heartbeats a node is asked to keep; a node silent for
        ``3 * heartbeat`` seconds is dropped.
    name : str
        The proxy's name: the ``origin`` of nodes registered here directly.

    A site proxy (zaudio.federation) sets :attr:`remote` to the stream names
    other proxies of the federation own (name -> who, for the error), and
    reads :meth:`owns` and :meth:`processes` from its link threads (one dict
    lookup each, safe while this registry changes).
    """

    def __init__(self, heartbeat: float = 1.0, name: str = "") -> None:
        self.heartbeat = heartbeat
        self.name = name
        self.nodes: dict[str, Node] = {}
        self.remote: dict[str, str] = {}  # stream name -> its owner elsewhere (federation)
        self._owners: dict[str, str] = {}  # stream name -> node id
        self._per_peer: dict[bytes, int] = {}  # peer -> live nodes it registered
        self._processors: dict[str, int] = {}  # processor name -> live processors so named

    def owns(self, stream: str) -> bool:
        """True if a node registered here publishes ``stream``."""
        return stream in self._owners

    def processes(self, name: str) -> bool:
        """True if a processor registered here is named ``name`` (its results are ours)."""
        return name in self._processors

    def evict(self, node_id: str) -> Node | None:
        """Drop a node now (the hub refused its stream: federation); None if unknown."""
        node = self.nodes.get(node_id)
        if node is not None:
            self._remove(node)
        return node

    def _expired(self, node: Node, now: float) -> bool:
        return node.last_seen < now - MISSES * self.heartbeat

    def _remove(self, node: Node) -> None:
        del self.nodes[node.id]
        left = self._per_peer.pop(node.peer, 1) - 1
        if left:
            self._per_peer[node.peer] = left
        for name in node.registration.owned():
            if self._owners.get(name) == node.id:
                del self._owners[name]
        if node.role == "processor":
            left = self._processors.pop(node.name, 1) - 1
            if left:
                self._processors[node.name] = left

    def expire(self, now: float) -> list[Node]:
        """Drop nodes that missed their heartbeats; return them."""
        gone = [n for n in self.nodes.values() if self._expired(n, now)]
        for node in gone:
            self._remove(node)
        return gone

    def _owner(self, stream: str, now: float) -> Node | None:
        node_id = self._owners.get(stream)
        node = self.nodes.get(node_id) if node_id is not None else None
        if node is not None and self._expired(node, now):
            self._remove(node)  # its names are free the moment it expired
            return None
        return node

    def register(self, req: Register, now: float, peer: bytes = b"") -> RegisterReply:
        """Add a node; ``peer`` is the connection it came on (see MAX_NODES_PER_PEER)."""
        # a site mirrors all its nodes over one connection (origin): MAX_NODES bounds it
        if peer and req.origin is None and self._per_peer.get(peer, 0) >= MAX_NODES_PER_PEER:
            self.expire(now)
            if self._per_peer.get(peer, 0) >= MAX_NODES_PER_PEER:
                raise RequestError(
                    f"this connection already registered {MAX_NODES_PER_PEER} live nodes: "
                    "disconnect some first (one connection per node is usual)",
                    "full",
                )
        if len(self.nodes) >= MAX_NODES:
            self.expire(now)
            if len(self.nodes) >= MAX_NODES:
                raise RequestError(
                    f"the proxy already has {MAX_NODES} live nodes; stop some first", "full"
                )
        for stream in req.owned():
            owner = self._owner(stream, now)
            if owner is not None:
                o = owner.registration
                raise RequestError(
                    f"stream {stream!r} is already published by {o.role} {o.name!r} "
                    f"(pid {o.pid} on {o.host}); pick another --stream name or stop it",
                    "stream_taken",
                )
            elsewhere = self.remote.get(stream)
            if elsewhere is not None:
                raise RequestError(
                    f"stream {stream!r} is already published by {elsewhere}; "
                    "pick another --stream name or stop it",
                    "stream_taken",
                )
        node = Node(
            id=secrets.token_hex(8),
            registration=msgspec.structs.replace(req, stats=None),
            since=now,
            last_seen=now,
            stats=req.stats or {},
            peer=peer,
            origin=req.origin or self.name,
        )
        self.nodes[node.id] = node
        self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
        for stream in req.owned():
            self._owners[stream] = node.id
        if node.role == "processor":
            self._processors[node.name] = self._processors.get(node.name, 0) + 1
        return RegisterReply(id=node.id, heartbeat=self.heartbeat)

    def _node(self, node_id: str, now: float) -> Node:
        node = self.nodes.get(node_id)
        if node is not None and self._expired(node, now):
            self._remove(node)
            node = None
        if node is None:
            raise RequestError(
                f"unknown id {node_id!r}: the proxy does not know this node "
                "(it restarted or the node missed its heartbeats); register again",
                "unknown_id",
            )
        return node

    def heartbeat_op(self, req: Heartbeat, now: float) -> OkReply:
        node = self._node(req.id, now)
        if req.streams is not None:
            # Extension: a node announces the format of its output streams once
            # it knows it; names must be ones it registered.
            allowed = set(node.registration.owned())
            for s in req.streams:
                if s.name not in allowed:
                    raise RequestError(f"stream {s.name!r} was not in this node's registration")
            node.registration = node.registration.announce(req.streams)
            for name in allowed - set(node.registration.owned()):
                del self._owners[name]  # a stream the node no longer lists is free
        if req.stats is not None:
            node.stats = req.stats
        node.last_seen = now
        return OkReply()

    def disconnect(self, req: Disconnect, now: float) -> OkReply:
        self._remove(self._node(req.id, now))
        return OkReply()

    def listing(self, now: float) -> ListReply:
        self.expire(now)
        nodes = [n.info() for n in self.nodes.values()]
        streams = [s for n in self.nodes.values() for s in n.listed()]
        return ListReply(nodes=nodes, streams=streams, time=now)
