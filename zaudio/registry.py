"""The proxy's registry of live nodes and the streams they own: pure state, no sockets.

Every public method takes an already-parsed request object and the current time,
and returns the reply object (``{"ok": True, ...}``) or raises
:class:`RequestError` with a sentence a person can act on. The proxy turns that
into ``{"ok": false, "error": ...}``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from zaudio.errors import LocalProtocolError, RequestError
from zaudio.protocol import validate_name

__all__ = ["Node", "Registry"]

MISSES = 3  # heartbeats a node may miss before it is dropped
# Bounds on what one peer can make the proxy hold (requests are capped at 1 MiB).
MAX_NODES = 4096
MAX_TEXT = 256  # role, name, host
MAX_ITEMS = 256  # streams, topics, outputs per node


@dataclass
class Node:
    """One registered node."""

    id: str
    role: str
    name: str
    host: str
    pid: int
    streams: list[dict[str, Any]]
    topics: list[str]
    outputs: list[str]
    since: float
    last_seen: float
    stats: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def owned(self) -> set[str]:
        return {s["name"] for s in self.streams} | set(self.outputs)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": self.role,
            "name": self.name,
            "host": self.host,
            "pid": self.pid,
            "streams": self.streams,
            "topics": self.topics,
            "outputs": self.outputs,
            "since": self.since,
            "last_seen": self.last_seen,
            "stats": self.stats,
            **self.extra,
        }


def _get(req: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    if key not in req:
        raise RequestError(f"missing field {key!r}: {what}")
    value = req[key]
    # bool is an int in Python, never in the protocol
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise RequestError(f"field {key!r} must be {what}, got {type(value).__name__}")
    return value


def _names(req: dict[str, Any], key: str) -> list[str]:
    values = req.get(key, [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise RequestError(f"field {key!r} must be a list of strings")
    if len(values) > MAX_ITEMS or any(len(v) > 2 * MAX_TEXT for v in values):
        raise RequestError(f"field {key!r} is too long: at most {MAX_ITEMS} short strings")
    return list(values)


def _streams(value: object) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise RequestError("field 'streams' must be a list of {name, rate, channels}")
    if len(value) > MAX_ITEMS:
        raise RequestError(f"field 'streams' lists more than {MAX_ITEMS} streams")
    streams = []
    for item in value:
        if not isinstance(item, dict):
            raise RequestError("each stream must be an object {name, rate, channels}")
        name = _get(item, "name", str, "the stream name")
        try:
            validate_name(name)
        except LocalProtocolError as exc:
            raise RequestError(str(exc)) from None
        rate = _get(item, "rate", int, "the sample rate in Hz, a positive integer")
        channels = _get(item, "channels", int, "the channel count, a positive integer")
        if rate < 1 or channels < 1:
            raise RequestError(f"stream {name!r}: rate and channels must be >= 1")
        streams.append({"name": name, "rate": rate, "channels": channels})
    return streams


class Registry:
    """Live nodes, the stream names they own, and their expiry.

    Parameters
    ----------
    heartbeat : float
        Seconds between heartbeats a node is asked to keep; a node silent for
        ``3 * heartbeat`` seconds is dropped.
    """

    def __init__(self, heartbeat: float = 1.0) -> None:
        self.heartbeat = heartbeat
        self.nodes: dict[str, Node] = {}

    def _owner(self, stream: str) -> Node | None:
        for node in self.nodes.values():
            if stream in node.owned():
                return node
        return None

    def expire(self, now: float) -> list[Node]:
        """Drop nodes that missed their heartbeats; return them."""
        limit = now - MISSES * self.heartbeat
        gone = [n for n in self.nodes.values() if n.last_seen < limit]
        for node in gone:
            del self.nodes[node.id]
        return gone

    def register(self, req: dict[str, Any], now: float) -> dict[str, Any]:
        role = _get(req, "role", str, "a word such as 'recorder' or 'processor'")
        name = _get(req, "name", str, "the node's name")
        host = _get(req, "host", str, "the node's host name")
        pid = _get(req, "pid", int, "the node's process id, an integer")
        if not role or not name:
            raise RequestError("fields 'role' and 'name' must not be empty")
        for key, text in (("role", role), ("name", name), ("host", host)):
            if len(text) > MAX_TEXT:
                raise RequestError(f"field {key!r} is longer than {MAX_TEXT} characters")
        if len(self.nodes) >= MAX_NODES:
            raise RequestError(
                f"the proxy already has {MAX_NODES} live nodes; stop some first", "full"
            )
        streams = _streams(req.get("streams", []))
        topics = _names(req, "topics")
        outputs = _names(req, "outputs")
        for out in outputs:
            try:
                validate_name(out)
            except LocalProtocolError as exc:
                raise RequestError(str(exc)) from None
        wanted = [s["name"] for s in streams] + outputs
        if len(set(wanted)) != len(wanted):
            raise RequestError("a stream is listed twice in this registration")
        for stream in wanted:
            owner = self._owner(stream)
            if owner is not None:
                raise RequestError(
                    f"stream {stream!r} is already published by {owner.role} {owner.name!r} "
                    f"(pid {owner.pid} on {owner.host}); pick another --stream name or stop it",
                    "stream_taken",
                )
        known = {"op", "role", "name", "host", "pid", "streams", "topics", "outputs"}
        node = Node(
            id=secrets.token_hex(8),
            role=role,
            name=name,
            host=host,
            pid=pid,
            streams=streams,
            topics=topics,
            outputs=outputs,
            since=now,
            last_seen=now,
            extra={
                k: v for k, v in req.items() if k not in known and k not in Node.__annotations__
            },
        )
        self.nodes[node.id] = node
        return {"ok": True, "id": node.id, "heartbeat": self.heartbeat}

    def _node(self, req: dict[str, Any]) -> Node:
        node_id = _get(req, "id", str, "the id 'register' returned")
        node = self.nodes.get(node_id)
        if node is None:
            raise RequestError(
                f"unknown id {node_id!r}: the proxy does not know this node "
                "(it restarted or the node missed its heartbeats); register again",
                "unknown_id",
            )
        return node

    def heartbeat_op(self, req: dict[str, Any], now: float) -> dict[str, Any]:
        node = self._node(req)
        stats = req.get("stats", node.stats)
        if not isinstance(stats, dict):
            raise RequestError("field 'stats' must be an object of counters")
        if "streams" in req:
            # Extension: a processor announces the format of its output streams
            # once it knows it; names must be ones it registered.
            streams = _streams(req["streams"])
            allowed = node.owned()
            for s in streams:
                if s["name"] not in allowed:
                    raise RequestError(f"stream {s['name']!r} was not in this node's registration")
            node.streams = streams
            node.outputs = [o for o in node.outputs if o not in {s["name"] for s in streams}]
        node.stats = stats
        node.last_seen = now
        return {"ok": True}

    def disconnect(self, req: dict[str, Any], now: float) -> dict[str, Any]:
        node = self._node(req)
        del self.nodes[node.id]
        return {"ok": True}

    def listing(self, now: float) -> dict[str, Any]:
        nodes = [n.as_dict() for n in self.nodes.values()]
        streams = [{**s, "node": n.id} for n in self.nodes.values() for s in n.streams]
        return {"ok": True, "nodes": nodes, "streams": streams, "time": now}
