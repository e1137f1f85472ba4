"""A processor's options, checked before anything connects.

:func:`processor_options` turns what :class:`~zaudio.Processor` (and so
``zaudio process``) was given into :class:`ProcessorOptions`, or raises
:class:`~zaudio.errors.ConfigError` with one line naming the mistake: a policy,
queue size, window or hop, name, topic pattern, format or ``since`` that cannot be used.
The user's code is loaded here too (:func:`~zaudio.importer.load_processor`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from zaudio.adapt import Adapter, check_format
from zaudio.backfill import check_since
from zaudio.connection import subscriptions, topic_patterns
from zaudio.errors import ConfigError, LocalProtocolError
from zaudio.failures import OnError
from zaudio.importer import Loaded, default_name, load_processor
from zaudio.names import _is_name, validate_name
from zaudio.overrun import OverrunPolicy
from zaudio.windows import Windows, check_window

__all__ = ["ProcessorOptions", "processor_options"]


@dataclass(frozen=True)
class ProcessorOptions:
    """What a processor runs with, every part checked."""

    loaded: Loaded
    name: str
    output: str
    #: the output name was given (a taken default name only turns audio off)
    explicit_output: bool
    topics: list[str]
    window: str | float | None
    hop: str | float | None
    windows: Windows | None
    #: the format conversion, or None (then blocks go through untouched)
    adapter: Adapter | None
    on_overrun: OverrunPolicy
    queue: int
    on_error: OnError
    #: seconds of history asked for first (:mod:`zaudio.backfill`), or None
    since: float | None = None


def processor_options(
    fn: Any,
    *,
    topics: str | Iterable[str] | None,
    name: str | None,
    output: str | None,
    window: str | float | None,
    hop: str | float | None,
    params: dict[str, Any] | None,
    on_overrun: OverrunPolicy,
    queue: int,
    on_error: OnError,
    rate: int | None,
    channels: int | None,
    dtype: str | None,
    pick: str | Iterable[int] | None,
    since: str | float | None = None,
) -> ProcessorOptions:
    """Check a processor's options and load its code (see :class:`~zaudio.Processor`)."""
    if on_overrun not in ("drop-oldest", "drop-newest"):
        raise ConfigError(f"invalid on_overrun {on_overrun!r}: use drop-oldest or drop-newest")
    if on_error not in ("log", "stop"):
        raise ConfigError(f"invalid on_error {on_error!r}: use log or stop")
    if queue < 1:
        raise ConfigError(f"invalid queue size {queue}: use at least 1")
    spec = check_window(window, hop)
    if name is None:
        name = default_name(fn) if isinstance(fn, str) else getattr(fn, "__name__", None)
        if not isinstance(name, str) or not _is_name(name):
            name = "processor"  # a lambda, a callable object
    name = _valid(name, "processor")
    patterns = topic_patterns(topics)
    subscriptions(patterns)  # a bad pattern fails here, before connecting
    loaded = load_processor(fn, params)
    # a class may ask for its format (input_format = {"rate": 16000, "channels": 1})
    wants = getattr(loaded.obj, "input_format", None)
    wants = wants if isinstance(wants, dict) else {}
    fmt = check_format(
        rate if rate is not None else wants.get("rate"),
        channels if channels is not None else wants.get("channels"),
        dtype if dtype is not None else wants.get("dtype"),
        pick,
        window,
        hop,
    )
    return ProcessorOptions(
        loaded=loaded,
        name=name,
        output=_valid(output or name, "output stream"),
        explicit_output=output is not None,
        topics=patterns,
        window=window,
        hop=spec[1] if spec is not None else None,
        windows=Windows(*spec) if spec is not None else None,
        adapter=Adapter(fmt) if fmt is not None else None,
        on_overrun=on_overrun,
        queue=queue,
        on_error=on_error,
        since=check_since(since),
    )


def _valid(name: str, what: str) -> str:
    try:
        return validate_name(name, what)
    except LocalProtocolError as exc:
        raise ConfigError(str(exc)) from None
