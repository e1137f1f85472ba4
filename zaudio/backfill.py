"""The subscriber side of history: the last ``since`` seconds first, then live, with an exact seam.

::

    Connection.open()   live subscription confirmed (messages queue in the SUB socket)
    Backfill.fetch()    op "history" for the same prefixes -> kept messages, decoded
    deliver history     each block through the node's one delivery path, info.history = True
    deliver live        a live block the backfill already delivered (same stream, src,
                        seq at or before the backfill's last) is dropped: counted in
                        ``overlapped``, not in ``rejected``

The history is asked for only once the live subscription is in effect at the
proxy, and the proxy drains its store before answering (:mod:`zaudio.history`):
what comes back reaches at least up to the first live block, so the seam has
neither a gap nor (once the overlap is dropped) a duplicate; ``seq`` and
``index`` go on across it as the stream tracker expects.

A proxy without ``--history`` (or one that predates the op) answers that it
keeps none: the node starts live, logs one line, and its counters say
``history: "off"``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec

from zaudio.control import History, HistoryReply
from zaudio.decoding import Decoder
from zaudio.errors import ConfigError, ProxyError, RequestRefused
from zaudio.protocol import AudioHeader
from zaudio.requester import Requester
from zaudio.security import Keys
from zaudio.tracking import CONFIRMED, GAP, RELEASED, RESTART, SKIP, Info, StreamTracker
from zaudio.units import parse_duration

__all__ = ["MAX_SINCE", "Backfill", "as_history", "check_since"]

log = logging.getLogger(__name__)

#: Seconds the history request may take (5 s of 48 kHz stereo is ~2 MB on loopback).
TIMEOUT = 10.0
#: The longest ``since`` (the ``history`` op's own bound): a day.
MAX_SINCE = 86400


class Backfill:
    """The kept blocks a late joiner gets first, and the filter that drops live duplicates.

    Parameters
    ----------
    since : float
        Seconds of history asked for.

    Attributes
    ----------
    items : deque of (AudioHeader, ndarray)
        The decoded history blocks not delivered yet, in the proxy's order.
    status : str
        ``"pending"`` before :meth:`fetch`; then ``"full"`` (the history covers
        ``since``), ``"short"`` (it starts at the oldest kept block, later than
        asked), ``"off"`` (the proxy keeps none) or ``"failed"`` (no answer).
    covered : float
        How far back the proxy keeps the streams asked for (seconds of stream time).
    blocks, overlapped, malformed : int
        History blocks received; live blocks dropped as already delivered;
        history messages that did not decode.
    """

    def __init__(self, since: float) -> None:
        self.since = since
        self.items: deque[tuple[AudioHeader, Any]] = deque()
        self.status = "pending"
        self.covered = 0.0
        self.blocks = 0
        self.overlapped = 0
        self.decoder = Decoder(log)
        # (stream, src) -> seq of the last history block; removed once live passes it
        self._last: dict[tuple[str, str], int] = {}

    @property
    def malformed(self) -> int:
        return self.decoder.malformed

    def fetch(
        self, control: str, prefixes: Sequence[bytes], keys: Keys | None, name: str = "node"
    ) -> None:
        """Ask the proxy for the history of ``prefixes`` (after the live subscription is confirmed)."""
        req = Requester(control, timeout=TIMEOUT, keys=keys)
        try:
            reply, frames = req.call_frames(
                History(topics=[p.decode() for p in prefixes], since=self.since), HistoryReply
            )
        except RequestRefused as exc:
            if exc.code in ("history_off", "unknown_op"):
                self.status = "off"
                log.warning(
                    "%s: the proxy keeps no history (start it with --history D); "
                    "starting live, without the %g s asked for",
                    name,
                    self.since,
                )
            else:
                self.status = "failed"
                log.warning("%s: history refused (%s); starting live", name, exc)
            return
        except ProxyError as exc:
            self.status = "failed"
            log.warning("%s: no history (%s); starting live", name, exc)
            return
        finally:
            req.close()
        last = self._last
        for i in range(0, len(frames) - 2, 3):
            decoded = self.decoder(frames[i : i + 3])
            if decoded is None:
                continue
            h, block = decoded
            if type(h) is not AudioHeader:
                continue
            self.items.append((h, block))
            last[(h.stream, h.src)] = h.seq
        self.blocks = len(self.items)
        self.covered = reply.kept
        # the proxy keeps these streams back further than `since`: the history covers it
        self.status = "full" if reply.kept >= self.since - 1e-6 else "short"
        if self.status == "short":
            log.info(
                "%s: history starts %.2f s back (the oldest kept), not %g s",
                name,
                reply.kept,
                self.since,
            )
        log.debug("%s: %d history blocks, from %.2f s ago", name, self.blocks, reply.oldest)

    def replay(
        self, tracker: StreamTracker, lock: threading.Lock | None = None
    ) -> Iterator[tuple[AudioHeader, Any, bool, bool]]:
        """Each history block to deliver, sorted by ``tracker`` like a live one.

        Yields ``(header, block, gap, restart)`` in order; ``tracker`` is used
        under ``lock`` (the overrun queue's, which its helper shares).
        """
        items = self.items
        guard = lock if lock is not None else contextlib.nullcontext()
        while items:
            h, block = items.popleft()
            with guard:
                verdict = tracker.follow(h, block)
                held = tracker.release() if verdict in (CONFIRMED, RELEASED) else None
            if held is not None:
                yield held[0], held[1], True, False
            if verdict not in (SKIP, RELEASED):
                yield h, block, verdict == GAP, verdict == RESTART

    def overlaps(self, h: AudioHeader) -> bool:
        """True for a live block the history already delivered (counted in ``overlapped``)."""
        last = self._last
        if not last:
            return False
        key = (h.stream, h.src)
        seq = last.get(key)
        if seq is None:
            return False
        if h.seq <= seq:
            self.overlapped += 1
            return True
        del last[key]  # past the seam: this stream goes on live
        return False

    def stats(self) -> dict[str, Any]:
        """``history`` (the status), ``history_blocks``, ``history_overlapped``,
        ``history_malformed``."""
        return {
            "history": self.status,
            "history_blocks": self.blocks,
            "history_overlapped": self.overlapped,
            "history_malformed": self.malformed,
        }


def as_history(info: Info) -> Info:
    """``info`` of a block (or window) from the proxy's history (``history=True``)."""
    return msgspec.structs.replace(info, history=True)


def check_since(since: str | float | None) -> float | None:
    """Seconds of ``since`` (``"2s"``, ``1.5``), None for none; ConfigError for a bad one."""
    if since is None:
        return None
    seconds = parse_duration(since, "since")
    if seconds > MAX_SINCE:
        raise ConfigError(f"invalid since {since!r}: at most {MAX_SINCE} seconds")
    return seconds
