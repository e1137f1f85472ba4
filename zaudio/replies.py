"""The control channel's replies (docs/protocol.md), as frozen msgspec structs.

Built by the proxy and its registry, read by nodes with
:func:`zaudio.control.decode_reply`; ``zaudio.control`` re-exports every one.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from zaudio.bounds import MAX_ITEMS, GroupSpec, StreamInfo, _Text

__all__ = [
    "Epoch",
    "ErrorReply",
    "GroupInfo",
    "HeartbeatReply",
    "HelloReply",
    "HistoryReply",
    "ListReply",
    "ListedStream",
    "NodeInfo",
    "OkReply",
    "ProxyInfo",
    "RateLimited",
    "RegisterReply",
    "Share",
    "TimeReply",
]


class OkReply(msgspec.Struct, frozen=True):
    """``{"ok": true}``: heartbeat and disconnect."""

    ok: bool = True


class Epoch(msgspec.Struct, frozen=True):
    """One membership of a group: blocks stamped from ``start`` on are shared by ``members``.

    ``left`` names the members of the epoch before that are gone, each with
    the last ``seq`` per stream it reported processing (docs/protocol.md,
    "Processor groups").
    """

    number: int
    start: float
    members: Annotated[list[_Text], msgspec.Meta(max_length=MAX_ITEMS)]
    left: dict[_Text, dict[_Text, int]] = {}


class Share(msgspec.Struct, frozen=True):
    """A group member's assignment, in each heartbeat reply: the latest epochs it needs.

    ``since`` is the first epoch of this member's current, unbroken membership:
    blocks of earlier epochs are never its own.
    """

    group: str
    member: str
    since: int
    epochs: Annotated[list[Epoch], msgspec.Meta(max_length=16)]


class HeartbeatReply(OkReply, frozen=True, kw_only=True):
    """``{"ok": true}``, with ``share`` for a member of a processor group."""

    share: Share | None = None


class GroupInfo(msgspec.Struct, frozen=True):
    """One processor group in a ``list`` reply: its epoch (from ``start``), live members in share order."""

    name: str
    epoch: int
    start: float
    members: list[str]
    spec: GroupSpec
    topics: list[str]


class ErrorReply(msgspec.Struct, frozen=True, kw_only=True):
    """``ok: false``: ``error`` says what was wrong and what to do, ``code`` is a word."""

    ok: bool = False
    error: str
    code: str = "bad_request"


class RateLimited(ErrorReply, frozen=True, kw_only=True):
    """``code: "rate_limited"``: this peer sent more than its share; retry after ``retry_after`` s."""

    code: str = "rate_limited"
    retry_after: float


class HelloReply(msgspec.Struct, frozen=True, kw_only=True):
    """The data endpoints, the protocol version and the proxy's clock."""

    ok: bool = True
    protocol: int
    version: str
    pub: str
    sub: str
    time: float
    heartbeat: float = 1.0


class RegisterReply(msgspec.Struct, frozen=True, kw_only=True):
    """The node's id and the heartbeat interval it must keep."""

    ok: bool = True
    id: str
    heartbeat: float = 1.0


class TimeReply(msgspec.Struct, frozen=True, kw_only=True):
    """The proxy's wall clock when the request arrived."""

    ok: bool = True
    time: float


class HistoryReply(msgspec.Struct, frozen=True, kw_only=True):
    """How many kept messages follow this frame (three frames each: topic, header, payload).

    ``oldest`` is the age in seconds of the first one (0 when none), ``seconds``
    how long the proxy keeps messages (``--history``), ``kept`` how far back it
    keeps those topics (the newest message's end minus the oldest ``t``): more
    than ``since``, the history covers all of ``since``; less, it starts at the
    oldest kept.
    """

    ok: bool = True
    messages: Annotated[int, msgspec.Meta(ge=0)]
    oldest: float
    seconds: float
    kept: float = 0.0


class NodeInfo(msgspec.Struct, frozen=True):
    """One node in a ``list`` reply."""

    id: str
    role: str
    name: str
    host: str
    pid: int
    streams: list[StreamInfo]
    topics: list[str]
    outputs: list[str]
    since: float
    last_seen: float
    stats: dict[str, Any]
    origin: str = ""
    via: str = ""


class ListedStream(msgspec.Struct, frozen=True):
    """One stream in a ``list`` reply, with the id of the node that publishes it.

    ``origin`` names the proxy the publisher is registered at; ``via`` the proxy
    this one learned it from (empty for its own streams; zaudio.federation).
    """

    name: str
    rate: int
    channels: int
    node: str
    origin: str = ""
    via: str = ""


class ProxyInfo(msgspec.Struct, frozen=True):
    """The proxy itself in a ``list`` reply (zaudio extension).

    ``refused`` counts what the proxy turned away, by kind: ``requests``
    (``ok: false`` replies but rate-limited ones), ``rate_limited``
    (requests over a connection's limit), ``publishers`` (publish-in
    connections the proxy cut off for a frame over the size cap, or refused at
    the handshake). ``publishers`` counts publish-in connections (zaudio.cutoffs).
    ``forwarded`` holds the forwarder's own counters (zaudio.forwarder);
    ``history`` what the history keeps and evicted (zaudio.history), None when off.
    ``name`` is the proxy's name (the ``origin`` of its nodes' streams);
    ``upstream`` the link to a hub (zaudio.federation), None without one.
    """

    version: str
    pid: int
    control: str
    pub: str
    sub: str
    since: float
    requests: int
    bad_requests: int
    refused: dict[str, int] = {}
    publishers: dict[str, int] = {}
    forwarded: dict[str, Any] | None = None
    history: dict[str, Any] | None = None
    name: str = ""
    upstream: dict[str, Any] | None = None


class ListReply(msgspec.Struct, frozen=True, kw_only=True):
    """Every live node and stream."""

    ok: bool = True
    nodes: list[NodeInfo]
    streams: list[ListedStream]
    time: float
    proxy: ProxyInfo | None = None
    groups: list[GroupInfo] = []
