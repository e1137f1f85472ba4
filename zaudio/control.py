"""The control channel's messages (docs/protocol.md, "The control channel"), with no I/O in it.

Every request and reply is a frozen :mod:`msgspec` struct. Nodes build requests
from them (:func:`encode`); the proxy turns one request frame into one of them
(:func:`decode_request`), checked against explicit bounds on what a peer can make
the proxy hold; replies go back with :func:`encode` and are read by nodes with
:func:`decode_reply`.

Unknown fields are ignored, never stored: extending the protocol is adding an
optional field here. Bounds (each refused with ``code: "bad_request"``):

=====================  ======================================================
role, name, host, id   1-256 characters (host may be empty)
streams, outputs       stream names (docs/protocol.md), at most 256 per node
topics                 at most 256 per node, each at most 256 characters
stats                  an object of at most 64 keys (each at most 64
                       characters) whose values are numbers, booleans, null,
                       strings of at most 256 characters, or one level of
                       such objects; at most 128 entries and 4 KiB of JSON
                       in all
since (history)        more than 0, at most 86400 seconds
a request              1 MiB (the proxy's ``MAXMSGSIZE`` on the socket)
=====================  ======================================================
"""

from __future__ import annotations

from typing import Annotated, Any, Final, TypeAlias, TypeVar

import msgspec

from zaudio.errors import LocalProtocolError, RemoteProtocolError, RequestError
from zaudio.protocol import validate_name

__all__ = [
    "MAX_ITEMS",
    "MAX_REQUEST",
    "MAX_STATS_BYTES",
    "MAX_STATS_ENTRIES",
    "MAX_STATS_KEY",
    "MAX_STATS_KEYS",
    "MAX_TEXT",
    "OPS",
    "Disconnect",
    "Epoch",
    "ErrorReply",
    "GroupInfo",
    "GroupSpec",
    "Heartbeat",
    "HeartbeatReply",
    "Hello",
    "HelloReply",
    "History",
    "HistoryReply",
    "List",
    "ListReply",
    "NodeInfo",
    "OkReply",
    "ProxyInfo",
    "RateLimited",
    "Register",
    "RegisterReply",
    "Request",
    "Share",
    "Stats",
    "StreamInfo",
    "Time",
    "TimeReply",
    "decode_reply",
    "decode_request",
    "encode",
    "stats_problem",
]

MAX_TEXT: Final = 256
MAX_ITEMS: Final = 256
MAX_STATS_KEYS: Final = 64
MAX_STATS_KEY: Final = 64
MAX_STATS_ENTRIES: Final = 128
MAX_STATS_BYTES: Final = 4096
MAX_REQUEST: Final = 1024 * 1024

_Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]
_Word = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TEXT)]
_Pos = Annotated[int, msgspec.Meta(ge=1)]
_Key = Annotated[str, msgspec.Meta(max_length=MAX_STATS_KEY)]
_Scalar = int | float | bool | None | Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]
_Group = Annotated[dict[_Key, _Scalar], msgspec.Meta(max_length=MAX_STATS_KEYS)]
Stats: TypeAlias = Annotated[dict[_Key, _Scalar | _Group], msgspec.Meta(max_length=MAX_STATS_KEYS)]
_Topics = Annotated[list[_Text], msgspec.Meta(max_length=MAX_ITEMS)]
_Names = Annotated[list[str], msgspec.Meta(max_length=MAX_ITEMS)]


def _name(name: str) -> None:
    try:
        validate_name(name)
    except LocalProtocolError as exc:
        raise ValueError(str(exc)) from None  # msgspec reports it as a ValidationError


def _check_stats(stats: Stats | None) -> None:
    if stats is None:
        return
    problem = _stats_size(stats)
    if problem:
        raise ValueError(problem)


def _stats_size(stats: Stats) -> str | None:
    entries = len(stats) + sum(len(v) for v in stats.values() if isinstance(v, dict))
    if entries > MAX_STATS_ENTRIES:
        return f"'stats' has {entries} entries: at most {MAX_STATS_ENTRIES}"
    size = len(_encoder.encode(stats))
    if size > MAX_STATS_BYTES:
        return f"'stats' is {size} bytes of JSON: at most {MAX_STATS_BYTES}"
    return None


def stats_problem(stats: Any) -> str | None:
    """Why ``stats`` cannot be sent as a node's counters, or None if it can."""
    try:
        checked = msgspec.convert(stats, Stats)
    except msgspec.ValidationError as exc:
        return f"'stats': {exc}"
    except (TypeError, ValueError) as exc:  # values JSON cannot carry
        return f"'stats': {exc}"
    return _stats_size(checked)


class StreamInfo(msgspec.Struct, frozen=True):
    """A stream a node publishes: its name and format."""

    name: str
    rate: _Pos
    channels: _Pos

    def __post_init__(self) -> None:
        _name(self.name)


_Streams = Annotated[list[StreamInfo], msgspec.Meta(max_length=MAX_ITEMS)]


class GroupSpec(msgspec.Struct, frozen=True):
    """What every member of a processor group must agree on (zaudio.groups).

    ``function`` is the import string, ``params`` and ``window`` their JSON
    text; the registration's ``topics`` are compared too.
    """

    name: str
    function: _Text = ""
    params: Annotated[str, msgspec.Meta(max_length=4 * MAX_TEXT)] = ""
    window: _Text = ""

    def __post_init__(self) -> None:
        _name(self.name)


class _Request(msgspec.Struct, frozen=True, omit_defaults=True, tag_field="op"):
    pass


class Hello(_Request, frozen=True, tag="hello"):
    """Ask for the data endpoints (reply: :class:`HelloReply`)."""


class Register(_Request, frozen=True, tag="register"):
    """Join the registry (reply: :class:`RegisterReply`).

    ``stats`` is a zaudio extension: a node registering again (after the proxy
    restarted) brings its counters along, so the registry holds what it held.
    """

    role: _Word
    name: _Word
    host: _Text
    pid: int
    streams: _Streams = []
    topics: _Topics = []
    outputs: _Names = []
    stats: Stats | None = None
    group: GroupSpec | None = None

    def __post_init__(self) -> None:
        for out in self.outputs:
            _name(out)
        wanted = self.owned()
        if len(set(wanted)) != len(wanted):
            raise ValueError("a stream is listed twice in this registration")
        _check_stats(self.stats)

    def owned(self) -> list[str]:
        """Every stream name this registration claims: its streams, then its outputs."""
        return [s.name for s in self.streams] + list(self.outputs)

    def announce(self, streams: list[StreamInfo]) -> Register:
        """This registration after a heartbeat announced ``streams`` (see :class:`Heartbeat`)."""
        named = {s.name for s in streams}
        return msgspec.structs.replace(
            self, streams=list(streams), outputs=[o for o in self.outputs if o not in named]
        )


class Heartbeat(_Request, frozen=True, tag="heartbeat"):
    """I am alive, with my counters (reply: :class:`OkReply`).

    ``streams`` (zaudio extension) announces the format of streams the node
    registered in ``outputs`` once it knows it; they replace its ``streams``.
    """

    id: _Word
    stats: Stats | None = None
    streams: _Streams | None = None

    def __post_init__(self) -> None:
        _check_stats(self.stats)


class Disconnect(_Request, frozen=True, tag="disconnect"):
    """Leave the registry now (reply: :class:`OkReply`)."""

    id: _Word


class List(_Request, frozen=True, tag="list"):
    """Ask for every live node and stream (reply: :class:`ListReply`)."""


class Time(_Request, frozen=True, tag="time"):
    """Ask for the proxy's clock (reply: :class:`TimeReply`)."""


class History(_Request, frozen=True, tag="history"):
    """Ask for the kept messages of some topics (zaudio extension; reply: :class:`HistoryReply`).

    ``topics`` are subscription prefixes (``"audio/mic\\u0000"``, ``"audio/"``),
    ``since`` how many seconds back. A proxy without ``--history`` answers
    ``code: "history_off"``.
    """

    topics: Annotated[list[_Text], msgspec.Meta(min_length=1, max_length=MAX_ITEMS)]
    since: Annotated[float, msgspec.Meta(gt=0, le=86400)]


Request: TypeAlias = Hello | Register | Heartbeat | Disconnect | List | Time | History
_REQUESTS: Final[tuple[type[Request], ...]] = (
    Hello,
    Register,
    Heartbeat,
    Disconnect,
    List,
    Time,
    History,
)
_TYPES: Final[dict[str, type[Request]]] = {str(t.__struct_config__.tag): t for t in _REQUESTS}
#: every op, sorted
OPS: Final = tuple(sorted(_TYPES))


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


class ListedStream(msgspec.Struct, frozen=True):
    """One stream in a ``list`` reply, with the id of the node that publishes it."""

    name: str
    rate: int
    channels: int
    node: str


class ProxyInfo(msgspec.Struct, frozen=True):
    """The proxy itself in a ``list`` reply (zaudio extension).

    ``refused`` counts what the proxy turned away, by kind: ``requests``
    (``ok: false`` replies but rate-limited ones), ``rate_limited``
    (requests over a connection's limit), ``publishers`` (publish-in
    connections the proxy cut off for a frame over the size cap, or refused at
    the handshake). ``publishers`` counts publish-in connections (zaudio.cutoffs).
    ``forwarded`` holds the forwarder's own counters (zaudio.forwarder);
    ``history`` what the history keeps and evicted (zaudio.history), None when off.
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


class ListReply(msgspec.Struct, frozen=True, kw_only=True):
    """Every live node and stream."""

    ok: bool = True
    nodes: list[NodeInfo]
    streams: list[ListedStream]
    time: float
    proxy: ProxyInfo | None = None
    groups: list[GroupInfo] = []


_encoder: Final = msgspec.json.Encoder()
_json: Final = msgspec.json.Decoder()

R = TypeVar("R", bound=msgspec.Struct)


def encode(msg: msgspec.Struct) -> bytes:
    """One control frame: a request (with its ``op``) or a reply."""
    return _encoder.encode(msg)


def decode_request(frame: bytes) -> Request:
    """The request in one control frame, checked.

    Raises
    ------
    RequestError
        A sentence naming what was wrong (``code``: ``bad_request``, or
        ``unknown_op``).
    """
    if len(frame) > MAX_REQUEST:
        raise RequestError(f"request is over {MAX_REQUEST} bytes")
    try:
        obj = _json.decode(frame)
    except msgspec.DecodeError:
        raise RequestError("request is not valid JSON: send one JSON object") from None
    if not isinstance(obj, dict):
        raise RequestError("request must be a JSON object with an 'op' field")
    op = obj.get("op")
    if not isinstance(op, str):
        raise RequestError("missing field 'op': one of " + ", ".join(OPS))
    kind = _TYPES.get(op)
    if kind is None:
        raise RequestError(f"unknown op {op!r}: use one of " + ", ".join(OPS), "unknown_op")
    try:
        return msgspec.convert(obj, kind)
    except msgspec.ValidationError as exc:
        raise RequestError(f"bad {op!r} request: {exc} (see docs/protocol.md)") from None


def decode_reply(frame: bytes, kind: type[R]) -> R | ErrorReply:
    """A reply to a request of ours: ``kind`` when ``ok`` is true, else :class:`ErrorReply`.

    Raises
    ------
    RemoteProtocolError
        The frame is not a zaudio reply, or not the reply expected.
    """
    try:
        obj = _json.decode(frame)
    except msgspec.DecodeError:
        obj = None
    if not isinstance(obj, dict) or not isinstance(obj.get("ok"), bool):
        raise RemoteProtocolError("the proxy sent a reply that is not a zaudio reply", "reply")
    try:
        if not obj["ok"]:
            code = obj.get("code")
            return ErrorReply(
                error=str(obj.get("error", "refused")),
                code=code if isinstance(code, str) else "refused",
            )
        return msgspec.convert(obj, kind)
    except msgspec.ValidationError as exc:
        raise RemoteProtocolError(f"the proxy's reply does not fit: {exc}", "reply") from None
