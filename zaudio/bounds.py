"""The bounds of the control channel, and the bounded types requests and replies share.

What a peer can make the proxy hold is bounded here (the table in
:mod:`zaudio.control`'s docstring): text lengths, list lengths, the shape and size
of a node's counters. :mod:`zaudio.control` (requests, the codec) and
:mod:`zaudio.replies` build on these types; ``zaudio.control`` re-exports all of it.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, TypeAlias

import msgspec

from zaudio.errors import LocalProtocolError
from zaudio.protocol import validate_name

__all__ = [
    "MAX_ITEMS",
    "MAX_REQUEST",
    "MAX_STATS_BYTES",
    "MAX_STATS_ENTRIES",
    "MAX_STATS_KEY",
    "MAX_STATS_KEYS",
    "MAX_STATS_STREAMS",
    "MAX_TEXT",
    "STREAMS_KEY",
    "GroupSpec",
    "Stats",
    "StreamInfo",
    "stats_problem",
]

_encoder: Final = msgspec.json.Encoder()

MAX_TEXT: Final = 256
MAX_ITEMS: Final = 256
MAX_STATS_KEYS: Final = 64
MAX_STATS_KEY: Final = 64
MAX_STATS_ENTRIES: Final = 128
MAX_STATS_BYTES: Final = 4096
#: Streams in a processor's per-stream breakdown (``stats["streams"]``, zaudio.perstream)
MAX_STATS_STREAMS: Final = 8
#: The one key whose objects may hold objects in turn: {stream: {counter: n}}
STREAMS_KEY: Final = "streams"
MAX_REQUEST: Final = 1024 * 1024

_Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]
_Word = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TEXT)]
_Pos = Annotated[int, msgspec.Meta(ge=1)]
_Key = Annotated[str, msgspec.Meta(max_length=MAX_STATS_KEY)]
_Scalar = int | float | bool | None | Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]
_Flat = Annotated[dict[_Key, _Scalar], msgspec.Meta(max_length=MAX_STATS_KEYS)]
_Group = Annotated[dict[_Key, _Scalar | _Flat], msgspec.Meta(max_length=MAX_STATS_KEYS)]
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
    entries = len(stats)
    for key, value in stats.items():
        if not isinstance(value, dict):
            continue
        entries += len(value)
        inner = [v for v in value.values() if isinstance(v, dict)]
        if not inner:
            continue
        if key != STREAMS_KEY:
            return f"'stats.{key}' holds objects: only '{STREAMS_KEY}' may (one per stream)"
        if len(value) > MAX_STATS_STREAMS:
            return f"'stats.{STREAMS_KEY}' has {len(value)} streams: at most {MAX_STATS_STREAMS}"
        if len(inner) != len(value):
            return f"'stats.{STREAMS_KEY}' holds a value that is not an object of counters"
        entries += sum(len(v) for v in inner)
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
