"""``zaudio.subscribe``: the pull-style counterpart of ``zaudio process``.

::

    for block, info in zaudio.subscribe("mic", window="25ms", hop="10ms"):
        ...

    # 16-bit 16 kHz mono, whatever the microphone gives (zaudio.adapt)
    for block, info in zaudio.subscribe("mic", rate=16000, channels=1, dtype="int16"):
        ...

    # the last 2 s first (the proxy runs with --history), then live (zaudio.backfill)
    for block, info in zaudio.subscribe("mic", since="2s"):
        ...
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import zmq

from zaudio.adapt import Adapter, adapted, check_format
from zaudio.backfill import Backfill, as_history, check_since
from zaudio.bus import recv_message
from zaudio.client import NodeClient
from zaudio.connection import Connection, topic_patterns
from zaudio.decoding import Decoder
from zaudio.protocol import AudioHeader
from zaudio.security import Keys
from zaudio.tracking import (
    CONFIRMED,
    GAP,
    IN_ORDER,
    RELEASED,
    RESTART,
    SKIP,
    Info,
    StreamTracker,
    info_of,
)
from zaudio.windows import Windows, check_window

__all__ = ["subscribe"]

log = logging.getLogger(__name__)


def subscribe(
    topics: str | Iterable[str] | None = None,
    *,
    proxy: str | None = None,
    window: str | float | None = None,
    hop: str | float | None = None,
    keys: Keys | None = None,
    timeout: float | None = None,
    name: str = "subscribe",
    stats: dict[str, Any] | None = None,
    rate: int | None = None,
    channels: int | None = None,
    dtype: str | None = None,
    pick: str | Iterable[int] | None = None,
    since: str | float | None = None,
) -> Iterator[tuple[Any, Info]]:
    """Yield ``(block, info)`` for every block (or window) of the matching streams.

    The subscription is in effect at the proxy before the first ``next()``
    returns; the node is registered (role ``subscriber``) while iterating, and
    leaves the registry when the generator is closed (``break``, ``close()``,
    garbage collection).

    Parameters
    ----------
    topics : str or list of str
        Stream names (exact), prefixes (``"lab-a/"``) or ``"*"`` (the default).
    proxy : str, optional
        Control endpoint; ``ZAUDIO_PROXY`` or ``tcp://127.0.0.1:5555`` by default.
    window, hop : str or float or int, optional
        Re-block into exact windows (durations like ``"25ms"`` or frame counts);
        ``hop`` defaults to ``window``. Windows are copies; plain blocks are
        read-only views of the received message.
    keys : Keys, optional
        CurveZMQ client keys.
    timeout : float, optional
        Stop iterating when nothing arrives for this many seconds (default: never).
    name : str
        The node name shown by ``zaudio ls``.
    stats : dict, optional
        Filled with the counters (``received``, ``gaps``, ``lost_frames``,
        ``rejected``, ``malformed``; see :mod:`zaudio.tracking`; ``unconvertible``
        and ``clipped`` with a conversion) as they change.
    rate, channels, dtype, pick : optional
        Convert every block as :class:`~zaudio.Processor` does (:mod:`zaudio.adapt`):
        ``rate`` Hz, ``channels=1`` (mean) or ``pick="0,2"``, ``dtype="int16"``.
        Windows are cut after the conversion.
    since : str or float, optional
        Start this long before live (``"2s"``): the proxy's history first, with
        ``info.history = True``, then live, contiguous (see :class:`~zaudio.Processor`).

    Yields
    ------
    block : ndarray
        float32 (or int16 with ``dtype="int16"``), shape ``(frames, channels)``;
        read-only unless converted or windowed.
    info : Info
        The header fields, plus ``gap`` and ``restart`` flags.

    Raises
    ------
    ConfigError
        For the same mistakes :class:`~zaudio.Processor` rejects: an invalid
        topic pattern, window, hop or format, a hop without a window, or a
        stream listed at start that cannot be converted.
    """
    spec = check_window(window, hop)
    windows = Windows(*spec) if spec is not None else None
    fmt = check_format(rate, channels, dtype, pick, window, hop)
    adapter = Adapter(fmt) if fmt is not None else None
    seconds = check_since(since)
    backfill = Backfill(seconds) if seconds is not None else None
    tracker = StreamTracker()
    counters = stats if stats is not None else {}
    counters.update(received=0, gaps=0, lost_frames=0, rejected=0, malformed=0)
    decoder = Decoder(log)

    def count() -> dict[str, Any]:
        counters.update(
            gaps=tracker.gaps,
            lost_frames=tracker.lost_frames,
            rejected=tracker.rejected,
            malformed=decoder.malformed,
        )
        if adapter is not None:
            counters.update(unconvertible=adapter.unconvertible, clipped=adapter.clipped)
        if backfill is not None:
            counters.update(backfill.stats())
        return dict(counters)

    conn = Connection(proxy, topic_patterns(topics), keys=keys)
    client: NodeClient | None = None
    try:
        conn.open()
        if backfill is not None:  # the live subscription is confirmed: the seam holds
            backfill.fetch(conn.control, conn.prefixes, keys, name)
        if adapter is not None:
            adapter.check(conn.matching_streams())
        client = NodeClient(
            proxy,
            role="subscriber",
            name=name,
            registration=lambda: {"topics": conn.topics()},
            stats=count,
            keys=keys,
        ).start()
        sock = conn.sock
        if timeout is not None:
            sock.rcvtimeo = int(timeout * 1000)
        if backfill is not None:
            for kept, data, gap, restart in backfill.replay(tracker):
                yield from _deliver(adapter, windows, kept, data, gap, restart, True)
                tracker.check(kept.stream, data)
            count()
        while True:
            try:
                frames = recv_message(sock)
            except zmq.Again:
                return
            decoded = decoder(frames)
            if decoded is None:
                count()
                continue
            h, block = decoded
            if type(h) is not AudioHeader:
                continue
            if backfill is not None and backfill.overlaps(h):
                continue  # the history delivered it already (counted there)
            counters["received"] += 1
            verdict = tracker.follow(h, block)
            if verdict == SKIP:
                count()
                continue
            if verdict in (CONFIRMED, RELEASED):
                held_h, held_block = tracker.release()
                yield from _deliver(adapter, windows, held_h, held_block, True, False)
                tracker.check(held_h.stream, held_block)
                if verdict == RELEASED:  # this block is held in turn
                    count()
                    continue
            if verdict != IN_ORDER:
                count()
            yield from _deliver(adapter, windows, h, block, verdict == GAP, verdict == RESTART)
            tracker.check(h.stream, block)
    finally:
        tracker.close()
        count()
        if client is not None:
            client.close()
        conn.close(0)


def _deliver(
    adapter: Adapter | None,
    windows: Windows | None,
    h: AudioHeader,
    block: Any,
    gap: bool,
    restart: bool,
    history: bool = False,
) -> Iterator[tuple[Any, Info]]:
    if adapter is not None:
        out: Iterable[tuple[Any, Info]] = adapted(adapter, windows, h, block, gap, restart)
    elif windows is None:
        out = ((block, info_of(h, gap, restart)),)
    else:
        out = windows.feed(h, block, gap, restart)
    if history:
        for data, info in out:
            yield data, as_history(info)
    else:
        yield from out
