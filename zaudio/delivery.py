"""The one delivery path of a processor's blocks: receive, decode, track, convert, call.

:class:`DeliveryPath` is the part of :class:`~zaudio.runtime.Processor` that every
block and window goes through, and the counters it keeps::

    socket --(the worker reads it while idle)--> decode --> track --> [convert, window]
           \\--(overrun.py's helper while a call runs slow)--> queue --/         |
    history (backfill.py, with since=) -----------------------------------> call(fn) -> outputs

An in-order whole block with no conversion and no windows takes the shortest way:
once a stream's block was delivered in order, its next header is predicted as bytes
(:mod:`zaudio.expected`), and a block whose header is that prediction is received,
matched, given its :class:`~zaudio.tracking.Info` and passed to the function, with no
header decode and no sorting by the tracker; any other block takes the full path
(decode, track, dispatch). On a cold cache every Python call and numpy operation
before the user's function costs ~5-40 us of its latency (docs/benchmarks.md): so
where the compiled wire is built (:mod:`zaudio.wire`) the receive, the match, the
array, the ``Info`` and the NaN/inf count are one C call, and with the Python wire
what can wait (the NaN/inf check) runs after the call.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import zmq

from zaudio.adapt import Adapter, adapted
from zaudio.backfill import Backfill, as_history
from zaudio.bus import recv_message
from zaudio.client import NodeClient
from zaudio.decoding import Decoder
from zaudio.expected import Expected
from zaudio.failures import Failures
from zaudio.importer import Loaded
from zaudio.outputs import Outputs
from zaudio.overrun import SLOW_CALL, OverrunQueue
from zaudio.protocol import AudioHeader
from zaudio.share import Membership
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
from zaudio.windows import Windows
from zaudio.wire import WIRE

__all__ = ["IDLE", "DeliveryPath"]

log = logging.getLogger("zaudio.runtime")

#: Seconds a blocking receive waits before the loop checks whether to stop.
IDLE = 0.1
_perf = time.perf_counter


class DeliveryPath:
    """Receive, decode, track and deliver blocks to the user's function (mixed into Processor).

    Counters: ``received`` (audio blocks decoded), ``processed`` (calls that
    returned), each also per stream (``tracker.counts``, :mod:`zaudio.perstream`), ``malformed`` (messages that broke the protocol), ``ignored``
    (results, which a processor does not take).
    """

    loaded: Loaded
    failures: Failures
    overrun: OverrunQueue
    tracker: StreamTracker
    adapter: Adapter | None
    backfill: Backfill | None
    membership: Membership | None
    client: NodeClient | None
    _windows: Windows | None
    _stop: threading.Event

    def _init_delivery(self) -> None:
        self._set_up = False
        self.processed = 0
        self.decoder = Decoder(log)
        self._fn = self.loaded.call
        self._takes_info = self.loaded.takes_info
        self.ignored = 0
        self._last_end = 0.0  # end time (t + duration) of the last block processed
        self._last_done = 0.0  # perf_counter() when its call returned
        self._proc_total = 0.0
        self._audio_total = 0.0

    @property
    def malformed(self) -> int:
        return self.decoder.malformed

    @property
    def received(self) -> int:
        """Audio blocks received: the sum of every stream's count (one add per block)."""
        return sum(c.received for c in list(self.tracker.counts.values()))

    def _lag(self) -> float | None:
        """Seconds behind live when the last call finished: its end time minus the block's."""
        if self.client is None or not self.processed:
            return None
        finished = self.client.now() - (time.perf_counter() - self._last_done)
        return finished - self._last_end

    def _accept(self, frames: list[Any]) -> tuple[AudioHeader, Any] | None:
        """Decode one message (lock held); None if it is dropped (malformed, or not audio)."""
        decoded = self.decoder(frames)
        if decoded is None:
            return None
        h, block = decoded
        if type(h) is not AudioHeader:
            self.ignored += 1
            return None
        backfill = self.backfill
        if backfill is not None and backfill.overlaps(h):
            return None  # the history delivered it already (counted there)
        self.tracker.counts.of(h.stream).received += 1
        return h, block

    def _replay(self, backfill: Backfill, outputs: Outputs) -> None:
        """Deliver the history blocks (tracked like live ones, ``info.history`` set)."""
        for h, block, gap, restart in backfill.replay(self.tracker, self.overrun.lock):
            if self._stop.is_set():
                return
            self._deliver(h, block, gap, restart, outputs, True)

    def _loop(self, sock: zmq.Socket[Any], outputs: Outputs) -> None:
        """Receive, decode, track and deliver until stopped: the one path of every block."""
        sock.rcvtimeo = int(IDLE * 1000)
        is_set = self._stop.is_set
        lock = self.overrun.lock
        q = self.overrun.items
        recv = recv_message
        again = zmq.Again
        wire = WIRE.recv if WIRE is not None else None
        handle = sock.underlying
        accept = self._accept
        tracker = self.tracker
        follow = tracker.follow
        deliver = self._deliver
        call = self._call
        check = tracker.check
        plain = self._windows is None and self.adapter is None
        # The in-order fast path (zaudio.expected): each topic's predicted next
        # header. Not with windows, conversion or history to merge.
        expected: dict[bytes, Expected] | None = {} if plain and self.backfill is None else None
        item: tuple[AudioHeader, Any] | None
        frames: list[Any] | None
        hit: Expected | None
        fast: tuple[Info, Any] | None
        bad: int | None
        while not is_set():
            hit = fast = bad = None
            with lock:
                if q:
                    item = q.popleft()
                    frames = None
                else:
                    # A burst the function keeps up with stays in ZeroMQ's queue;
                    # only a call that falls behind makes the helper apply the
                    # overrun policy.
                    if wire is not None:  # the same receive and match, compiled
                        found = wire(handle, 0, expected)
                        if found is None:
                            tracker.flush()  # idle: check what waits for its batch
                            continue
                        hit, got, block, bad = found
                        if hit is None:
                            frames = got
                        else:
                            fast = got, block  # Info, array
                    else:
                        try:
                            frames = recv(sock)
                        except again:
                            tracker.flush()
                            continue
                        if expected is not None:
                            hit = expected.get(frames[0])
                            if hit is not None:
                                fast = hit.match(frames)
                    if hit is not None and fast is not None:
                        hit.counts.received += 1
                        item = None
                    else:
                        assert frames is not None  # only a hit leaves it unset
                        item = accept(frames)
                        if item is None:
                            continue
                if item is not None:
                    h, block = item
                    verdict = follow(h, block)
                    if verdict in (CONFIRMED, RELEASED):
                        held_h, held_block = tracker.release()
            if hit is not None and fast is not None:
                info, block = fast
                call(block, info, outputs)
                if bad is None:  # the Python wire: checked after the call, in batches
                    check(info.stream, block)
                elif bad:  # the compiled one counted them as it received the block
                    tracker.count_nonfinite(info.stream, bad)
                continue
            if verdict == IN_ORDER and plain:
                # what _deliver does for an in-order block, without its dispatch
                call(block, info_of(h, False, False), outputs)
                check(h.stream, block)  # after the call: nothing waits on it
            elif verdict == CONFIRMED:
                deliver(held_h, held_block, True, False, outputs)
                deliver(h, block, False, False, outputs)
            elif verdict == RELEASED:
                deliver(held_h, held_block, True, False, outputs)
            elif verdict != SKIP:
                deliver(h, block, verdict == GAP, verdict == RESTART, outputs)
            if expected is not None:
                if frames is None:
                    expected.clear()  # the queue's blocks moved positions: predict afresh
                else:
                    raw = frames[1]
                    hit = Expected.of(h, raw if type(raw) is bytes else raw.bytes, tracker)
                    if hit is None:
                        expected.pop(frames[0], None)
                    else:
                        expected[frames[0]] = hit

    def _deliver(
        self,
        h: AudioHeader,
        block: Any,
        gap: bool,
        restart: bool,
        outputs: Outputs,
        history: bool = False,
    ) -> None:
        """Call the function on the block, or on every window it completes."""
        windows = self._windows
        adapter = self.adapter
        if adapter is not None:
            for data, info in adapted(adapter, windows, h, block, gap, restart):
                self._call(data, as_history(info) if history else info, outputs)
        elif windows is None:
            info = info_of(h, gap, restart)
            self._call(block, as_history(info) if history else info, outputs)
        else:
            for data, info in windows.feed(h, block, gap, restart):
                self._call(data, as_history(info) if history else info, outputs)
        self.tracker.check(h.stream, block)  # after the call: nothing waits on it

    def _call(self, block: Any, info: Info, outputs: Outputs) -> None:
        """One call of the function (on a block of ours); its result goes to ``outputs``."""
        # Before the function only what must be (on a cold cache each line here
        # is ~1 us of the block's latency); the bookkeeping follows the call.
        if self.membership is not None and not self.membership.mine(info):
            return
        if not self._set_up:
            self._set_up = True
            self.failures.setup(self.loaded.setup, info)
        overrun = self.overrun
        audio = info.frames / info.rate
        overrun.budget = audio if audio > SLOW_CALL else SLOW_CALL
        started = overrun.busy = _perf()
        try:
            out = self._fn(block, info) if self._takes_info else self._fn(block)
        except Exception as exc:
            overrun.busy = 0.0
            self.failures.call_failed(exc, info)
            return
        done = _perf()
        overrun.busy = 0.0
        self._proc_total += done - started
        self._audio_total += audio
        self.processed += 1
        counts = self.tracker.counts.get(info.stream)
        if counts is not None:  # None only for a stream never received (not ours)
            counts.processed += 1
        self._last_end = info.t + audio
        self._last_done = done
        if out is not None:
            outputs.publish(out, info)
