"""The overrun queue: what a processor does while its function is slower than the stream.

The worker thread reads its SUB socket itself while it has nothing to do: no
hand-off between threads per block, which is what keeps latency close to a plain
SUB socket (a receiving thread handing every block to a worker measured ~1.3x a
plain SUB's latency on this design's test machine; this, 1.02-1.10x). Only while one call of the user function has
been running longer than the audio it was given (and at least
:data:`SLOW_CALL`), i.e. the function is falling behind live, does the helper
thread of :class:`OverrunQueue` (which looks every :data:`TICK` seconds) take
the socket and drain it into a bounded queue, so that the ``--on-overrun``
policy, not ZeroMQ's queues, decides what is lost, and every loss is counted.
When the call returns, the worker takes the socket back and serves the queue
first.

The hand-off is :attr:`OverrunQueue.lock`: a ZeroMQ socket may move between
threads with a memory barrier, never be used by two at once. The worker holds
the lock while it receives (and decodes and tracks) a message; the helper holds
it while it drains. Everything both touch (the queue, the node's receive
counters, the stream tracker) is touched only under that lock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

import zmq

from zaudio.bus import recv_message
from zaudio.protocol import AudioHeader
from zaudio.tracking import StreamTracker

__all__ = ["SLOW_CALL", "TICK", "TICK_IDLE", "OverrunPolicy", "OverrunQueue"]

#: Seconds between the helper's looks at the worker: while calls run slow, and otherwise.
TICK = 0.02
TICK_IDLE = 0.1
#: A call must run at least this long (and longer than its audio) to count as slow.
SLOW_CALL = 0.005

OverrunPolicy = Literal["drop-oldest", "drop-newest"]
Item = tuple[AudioHeader, Any]


class OverrunQueue:
    """A bounded queue of decoded blocks, and the helper thread that fills it while a call is slow.

    Parameters
    ----------
    capacity : int
        Messages the queue holds; beyond it ``policy`` drops one (counted in
        :attr:`dropped` and in its stream's ``tracker.counts``, and told to ``tracker`` so that the jump it leaves is
        not taken for upstream loss).
    policy : {"drop-oldest", "drop-newest"}
        Which message goes when the queue is full.
    tracker : StreamTracker
        The node's stream tracker.

    Attributes
    ----------
    busy : float
        ``perf_counter()`` when the running call started, 0.0 while idle (set by
        the worker around each call).
    budget : float
        Seconds of audio the running call was given (at least :data:`SLOW_CALL`).
    """

    def __init__(self, capacity: int, policy: OverrunPolicy, tracker: StreamTracker) -> None:
        self.capacity = capacity
        self.policy = policy
        self.tracker = tracker
        self.items: deque[Item] = deque()
        self.lock = threading.Lock()
        self.busy = 0.0
        self.budget = SLOW_CALL
        self.dropped = 0
        self._thread: threading.Thread | None = None
        # Held while the helper runs; join() releases it to wake the helper at once.
        self._wake = threading.Lock()

    def __len__(self) -> int:
        return len(self.items)

    def stats(self) -> dict[str, int]:
        """``dropped`` by the policy so far, ``queued`` now."""
        return {"dropped": self.dropped, "queued": len(self.items)}

    def put(self, item: Item) -> None:
        """Queue one message (lock held), dropping one by the policy when full."""
        q = self.items
        if len(q) >= self.capacity:
            self.dropped += 1
            gone = item if self.policy == "drop-newest" else q.popleft()
            self.tracker.counts.of(gone[0].stream).dropped += 1
            self.tracker.own_drop(gone[0])
            if gone is item:
                return
        q.append(item)

    def start(
        self,
        sock: zmq.Socket[Any],
        accept: Callable[[list[Any]], Item | None],
        stop: threading.Event,
    ) -> None:
        """Start the helper thread: it drains ``sock`` through ``accept`` while a call is slow."""
        self._wake.acquire()
        self._thread = threading.Thread(
            target=self._drain_while_slow, args=(sock, accept, stop), name="zaudio-drain"
        )
        self._thread.daemon = True
        self._thread.start()

    def join(self) -> None:
        """Wake the helper and wait for it (after ``stop`` was set)."""
        if self._thread is not None:
            self._wake.release()
            self._thread.join(2 * TICK_IDLE + 1)
            self._thread = None

    def _drain_nowait(
        self, sock: zmq.Socket[Any], accept: Callable[[list[Any]], Item | None]
    ) -> None:
        """Move every message waiting in the socket into the queue (lock held)."""
        while int(sock.get(zmq.EVENTS)) & zmq.POLLIN:
            try:
                frames = recv_message(sock, zmq.NOBLOCK)
            except zmq.Again:
                return
            item = accept(frames)
            if item is not None:
                self.put(item)

    def _drain_while_slow(
        self,
        sock: zmq.Socket[Any],
        accept: Callable[[list[Any]], Item | None],
        stop: threading.Event,
    ) -> None:
        lock = self.lock
        tick = TICK_IDLE
        last_slow = -1.0
        # Looking costs a thread wake-up; look often only while calls run slow.
        # A timed acquire of a held lock, not stop.wait: one C call per look where an
        # Event's wait runs threading.py's Condition (~90 us a look on a cold cache,
        # against ~60); join() releases the lock, so stopping does not wait a tick.
        wait, is_set = self._wake.acquire, stop.is_set
        while not is_set():
            if wait(timeout=tick):
                break  # join(): stop was set
            started = self.busy
            now = time.perf_counter()
            if not started or now - started < self.budget:
                if now - last_slow > 1.0:
                    tick = TICK_IDLE
                continue
            tick, last_slow = TICK, now
            with lock:
                while self.busy == started and not stop.is_set():
                    if sock.poll(2):
                        self._drain_nowait(sock, accept)
