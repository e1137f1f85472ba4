"""``zaudio.results``: a processor's (or a group's) results, optionally in index order.

::

    for r in zaudio.results("asr", ordered=True, reorder="2s"):
        print(r.stream, r.index, r.data)

The members of a group (zaudio.groups) publish on one ``result/<group>`` topic,
each its own share, so results arrive slightly out of order. With
``ordered=True`` a :class:`Reorder` holds each stream's results and releases
them by ``index``: the next result of a stream is the one at its expected index
(the last released ``index`` plus its step: ``frames``, or the smallest
distance seen between indices, for overlapping windows). One that is not there
after ``reorder`` seconds is skipped: the results held behind it go out, and
what was skipped is counted (``skipped`` results, ``skipped_frames``), as is a
result that arrives after its place went by (``late``, dropped) or twice
(``duplicates``). Nothing is lost silently; ``zaudio ls`` shows the counters of
the consumer (role ``consumer``).

:class:`Reorder` orders anything with a ``stream``, an ``index`` and ``frames``
(:class:`Indexed`), and :func:`receive` is the one loop that feeds it from a
socket: a group's audio output is put in order by the same two
(:mod:`zaudio.sequencer`).
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import zmq

from zaudio.bus import recv_message
from zaudio.client import NodeClient
from zaudio.connection import Connection
from zaudio.decoding import Decoder
from zaudio.errors import ConfigError, LocalProtocolError
from zaudio.protocol import ResultHeader, validate_name
from zaudio.security import Keys
from zaudio.units import parse_duration

__all__ = ["IDLE", "Indexed", "Reorder", "receive", "results"]

log = logging.getLogger(__name__)

#: Seconds :func:`receive` waits at most before it looks at its ``stop`` event.
IDLE = 0.1


class Indexed(Protocol):
    """What :class:`Reorder` orders: a result, or a piece of audio (zaudio.sequencer)."""

    @property
    def stream(self) -> str: ...
    @property
    def index(self) -> int: ...
    @property
    def frames(self) -> int: ...


T = TypeVar("T", bound=Indexed)


@dataclass
class _Stream(Generic[T]):
    held: list[tuple[int, int, float, T]] = field(default_factory=list)
    next: int | None = None  # the index expected next; None until the first release
    step: int | None = None  # the smallest distance seen between indices
    last: int | None = None  # the last index released


class Reorder(Generic[T]):
    """Results in ``index`` order per stream, skipping a missing one after ``reorder`` seconds.

    Pure state (no sockets): :meth:`push` a result with its arrival time, then
    take what is ready with :meth:`pop`; :meth:`wait` says how long until more
    can be ready without another arrival.
    """

    def __init__(self, reorder: float) -> None:
        self.reorder = reorder
        self._streams: dict[str, _Stream[T]] = {}
        self._n = 0
        self.released = self.skipped = self.skipped_frames = self.late = self.duplicates = 0

    def push(self, r: T, now: float) -> None:
        s = self._streams.setdefault(r.stream, _Stream[T]())
        if s.next is not None and r.index < s.next:
            if s.last is not None and r.index == s.last:
                self.duplicates += 1
            else:
                self.late += 1
            return
        if any(i == r.index for i, _n, _t, _r in s.held):
            self.duplicates += 1
            return
        self._n += 1
        heapq.heappush(s.held, (r.index, self._n, now, r))

    def pop(self, now: float) -> Iterator[T]:
        """Every result ready now, in index order per stream."""
        for s in self._streams.values():
            while s.held:
                index, _n, _arrived, r = s.held[0]
                if s.next is None or index != s.next:
                    # the first one, or a hole before it: wait out the oldest held
                    oldest = min(t for _i, _n, t, _r in s.held)
                    if now - oldest < self.reorder:
                        break
                    if s.next is not None:
                        gap = index - s.next
                        step = s.step or r.frames or 1
                        self.skipped += max(1, round(gap / step))
                        self.skipped_frames += gap
                heapq.heappop(s.held)
                for before in (s.last, *(s.held[0][:1] if s.held else ())):
                    d = abs(index - before) if before is not None else 0
                    if d:
                        s.step = d if s.step is None else min(s.step, d)
                s.last = index
                s.next = index + min(r.frames or 1, s.step or r.frames or 1)
                self.released += 1
                yield r

    def behind(self, r: T) -> int:
        """How far ``r`` is before its stream's expected index (0: not behind)."""
        s = self._streams.get(r.stream)
        return 0 if s is None or s.next is None else max(0, s.next - r.index)

    def forget(self, stream: str) -> list[T]:
        """Start ``stream`` afresh (its source restarted); returns what it held, in order."""
        s = self._streams.pop(stream, None)
        return [r for _i, _n, _t, r in sorted(s.held)] if s is not None else []

    def wait(self, now: float) -> float | None:
        """Seconds until a held result can be released without another arrival (None: none held)."""
        oldest = [t for s in self._streams.values() for _i, _n, t, _r in s.held]
        if not oldest:
            return None
        return max(0.0, min(oldest) + self.reorder - now)

    def stats(self) -> dict[str, int]:
        held = sum(len(s.held) for s in self._streams.values())
        return {
            "released": self.released,
            "held": held,
            "skipped": self.skipped,
            "skipped_frames": self.skipped_frames,
            "late": self.late,
            "duplicates": self.duplicates,
        }


def results(
    processor: str,
    *,
    ordered: bool = False,
    reorder: str | float = "2s",
    proxy: str | None = None,
    keys: Keys | None = None,
    timeout: float | None = None,
    stats: dict[str, Any] | None = None,
) -> Generator[ResultHeader, None, None]:
    """Yield the results of ``processor`` (a processor's name, or a group's).

    Parameters
    ----------
    processor : str
        Results come from ``result/<processor>``.
    ordered : bool
        Release them in ``index`` order per stream (see :class:`Reorder`).
    reorder : str or float
        With ``ordered``: how long a missing result is waited for before it is
        skipped and counted (``"2s"``, ``"500ms"``, seconds).
    proxy, keys :
        As for :func:`zaudio.subscribe`.
    timeout : float, optional
        Stop when nothing arrives (and nothing held is due) for this many seconds.
    stats : dict, optional
        Filled with the counters: ``received``, ``malformed``, and with
        ``ordered`` those of :meth:`Reorder.stats`.

    Yields
    ------
    ResultHeader
        ``stream``, ``index``, ``frames``, ``t`` and ``data`` of each result.

    Raises
    ------
    ConfigError
        An invalid processor name or ``reorder``.
    """
    try:
        validate_name(processor, "processor")
    except LocalProtocolError as exc:
        raise ConfigError(str(exc)) from None
    bound = parse_duration(reorder, "reorder")
    order = Reorder[ResultHeader](bound) if ordered else None
    counters = stats if stats is not None else {}
    counters.update(received=0, malformed=0)
    decoder = Decoder(log)

    def count() -> dict[str, Any]:
        counters["malformed"] = decoder.malformed
        if order is not None:
            counters.update(order.stats())
        return dict(counters)

    conn = Connection(proxy, [f"result/{processor}"], keys=keys)
    client: NodeClient | None = None
    try:
        conn.open()
        client = NodeClient(
            proxy,
            role="consumer",
            name=f"results-{processor}",
            registration=lambda: {"topics": conn.topics()},
            stats=count,
            keys=keys,
        ).start()

        def accept(frames: list[Any]) -> ResultHeader | None:
            decoded = decoder(frames)
            if decoded is None:
                count()
                return None
            h = decoded[0]
            if type(h) is not ResultHeader:
                return None
            counters["received"] += 1
            return h

        yield from receive(conn.sock, accept, order, timeout=timeout)
    finally:
        count()
        if client is not None:
            client.close()
        conn.close(0)


def receive(
    sock: zmq.Socket[Any],
    accept: Callable[[list[Any]], T | None],
    order: Reorder[T] | None,
    *,
    timeout: float | None = None,
    stop: threading.Event | None = None,
) -> Iterator[T]:
    """Receive messages, ``accept`` each (None: dropped), and yield what is ready.

    With ``order``, items go through it and come out in index order (a missing
    one skipped after its bound); without, as they come. Ends when ``stop`` is
    set (looked at every :data:`IDLE` s), or when nothing arrived for
    ``timeout`` seconds and nothing held is due.
    """
    quiet = time.monotonic()
    while stop is None or not stop.is_set():
        now = time.monotonic()
        due = order.wait(now) if order is not None else None
        left = None if timeout is None else quiet + timeout - now
        waits = [w for w in (due, left, IDLE if stop is not None else None) if w is not None]
        sock.rcvtimeo = max(1, int(max(0.0, min(waits)) * 1000)) if waits else -1
        try:
            frames = recv_message(sock)
        except zmq.Again:
            frames = None
        now = time.monotonic()
        if frames is not None:
            quiet = now
            item = accept(frames)
            if item is not None:
                if order is None:
                    yield item
                else:
                    order.push(item, now)
        if order is not None:
            yield from order.pop(now)
        idle = frames is None and timeout is not None and now - quiet >= timeout
        if idle and (order is None or order.wait(now) is None):
            return
