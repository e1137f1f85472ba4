"""The control channel's messages (docs/protocol.md, "The control channel"), with no I/O in it.

Every request and reply is a frozen :mod:`msgspec` struct. Nodes build requests
from them (:func:`encode`); the proxy turns one request frame into one of them
(:func:`decode_request`), checked against explicit bounds on what a peer can make
the proxy hold; replies go back with :func:`encode` and are read by nodes with
:func:`decode_reply`.

Unknown fields are ignored, never stored: extending the protocol is adding an
optional field here. The bounds and the types they shape are :mod:`zaudio.bounds`,
the replies :mod:`zaudio.replies`; this module re-exports both. Bounds (each refused with ``code: "bad_request"``):

=====================  ======================================================
role, name, host, id   1-256 characters (host may be empty)
streams, outputs       stream names (docs/protocol.md), at most 256 per node
topics                 at most 256 per node, each at most 256 characters
stats                  an object of at most 64 keys (each at most 64
                       characters) whose values are numbers, booleans, null,
                       strings of at most 256 characters, or one level of
                       such objects; at most 128 entries and 4 KiB of JSON
                       in all. Only ``streams`` may hold objects of such
                       objects: at most 8 (one per input stream,
                       zaudio.perstream)
since (history)        more than 0, at most 86400 seconds
a request              1 MiB (the proxy's ``MAXMSGSIZE`` on the socket)
=====================  ======================================================
"""

from __future__ import annotations

from typing import Annotated, Final, TypeAlias, TypeVar

import msgspec

from zaudio.bounds import (
    MAX_ITEMS,
    MAX_REQUEST,
    MAX_STATS_BYTES,
    MAX_STATS_ENTRIES,
    MAX_STATS_KEY,
    MAX_STATS_KEYS,
    MAX_STATS_STREAMS,
    MAX_TEXT,
    STREAMS_KEY,
    GroupSpec,
    Stats,
    StreamInfo,
    _check_stats,
    _encoder,
    _name,
    _Names,
    _Streams,
    _Text,
    _Topics,
    _Word,
    stats_problem,
)
from zaudio.errors import RemoteProtocolError, RequestError
from zaudio.replies import (
    Epoch,
    ErrorReply,
    GroupInfo,
    HeartbeatReply,
    HelloReply,
    HistoryReply,
    ListedStream,
    ListReply,
    NodeInfo,
    OkReply,
    ProxyInfo,
    RateLimited,
    RegisterReply,
    Share,
    TimeReply,
)

__all__ = [
    "MAX_ITEMS",
    "MAX_REQUEST",
    "MAX_STATS_BYTES",
    "MAX_STATS_ENTRIES",
    "MAX_STATS_KEY",
    "MAX_STATS_KEYS",
    "MAX_STATS_STREAMS",
    "MAX_TEXT",
    "OPS",
    "STREAMS_KEY",
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
    "ListedStream",
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
    "split_envelope",
    "stats_problem",
]


class _Request(msgspec.Struct, frozen=True, omit_defaults=True, tag_field="op"):
    pass


class Hello(_Request, frozen=True, tag="hello"):
    """Ask for the data endpoints (reply: :class:`HelloReply`)."""


class Register(_Request, frozen=True, tag="register"):
    """Join the registry (reply: :class:`RegisterReply`).

    ``stats`` is a zaudio extension: a node registering again (after the proxy
    restarted) brings its counters along, so the registry holds what it held.
    ``origin`` (extension, zaudio.federation) names the proxy the node is really
    registered at, when a site proxy mirrors it to its hub.
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
    origin: _Word | None = None

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


def split_envelope(frames: list[bytes]) -> tuple[list[bytes] | None, list[bytes]]:
    """A ROUTER's ``[id, ..., b"", body...]`` -> (envelope up to the empty frame, body).

    The envelope is None when there is no empty delimiter frame (not a REQ peer).
    """
    for i in range(1, len(frames)):
        if not frames[i]:
            return frames[: i + 1], frames[i + 1 :]
    return None, frames
