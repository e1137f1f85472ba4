"""The one publishing stack: :class:`Publisher` stamps, sequences, buffers and sends audio.

Every node that publishes an audio stream does it through a :class:`Publisher`:
your own code (``zaudio.Publisher``), the recorder, each browser tab of
``zaudio web`` and a processor's audio output. So every one of them:

- **sequences** the same way: ``seq`` counts blocks, ``index`` frames, from 0;
  a block lost before it reached the publisher is accounted with :meth:`skip`,
  so receivers see the gap;
- **stamps** the same way: ``t = t0 + offset + index / rate`` on the sample
  clock, in the proxy's time base (``offset`` read when the block leaves, so a
  block held before the clock was measured is still stamped right), unless
  the caller gives ``t``;
- **buffers an outage** the same bounded, counted way: while the bus is not
  ready (no proxy, a restart, our registration not yet answered), blocks are
  held up to ``buffer`` seconds; beyond it the oldest are dropped (counted in
  ``dropped`` / ``dropped_frames``), or, for a caller that can wait
  (``live=False``), :attr:`Publisher.full` tells it to wait. After the proxy
  restarted, what was held waits up to :data:`RESUBSCRIBE_WAIT` for the former
  subscribers to reconnect, and at least :data:`RECONNECT_GRACE`, rather than
  being flushed into nothing.

A Publisher is owned by one thread (its outlet's).
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Any

import numpy.typing as npt
import zmq

from zaudio import clock
from zaudio.bus import Outlet
from zaudio.client import Endpoints, NodeClient
from zaudio.protocol import AudioStream, Block
from zaudio.security import Keys

__all__ = ["RECONNECT_GRACE", "RESUBSCRIBE_WAIT", "Publisher"]

#: Seconds a reconnected publisher waits for its former subscribers to come back
#: before it sends what it buffered while the proxy was away.
RESUBSCRIBE_WAIT = 1.0
#: Seconds a reconnected publisher holds its buffer even once a subscriber is back,
#: so that every subscriber (not just the first) has reconnected: 3x ZeroMQ's
#: reconnect interval.
RECONNECT_GRACE = 0.3

_POLLIN = int(zmq.POLLIN)

_Held = tuple[int, int, Block, "float | None"]  # seq, index, block, t (None: stamp on sending)


class Publisher:
    """Publish float32 blocks as one audio stream on the bus.

    Registers the stream with the proxy, waits (bounded) until the bus is ready,
    and stamps each block with ``seq``, ``index`` and ``t`` on the sample clock in
    the proxy's time base.

    Parameters
    ----------
    stream : str
        The stream name (``audio/<stream>`` on the wire).
    rate : int
        Sample rate in Hz.
    channels : int
        Channel count.
    proxy : str, optional
        Control endpoint; ``ZAUDIO_PROXY`` or ``tcp://127.0.0.1:5555`` by default.
    keys : Keys, optional
        CurveZMQ client keys.
    name, role : str
        The node's name (default: the stream's) and role in ``zaudio ls``.
    wait : float
        Seconds :meth:`start` waits for the proxy before publishing anyway
        (blocks sent while the bus is not ready are held, see ``buffer``).
    hwm : int
        The outlet's send high-water mark, in messages.
    buffer : float
        Seconds of audio held while the bus is not ready.
    live : bool
        True: beyond ``buffer`` the oldest held blocks are dropped (counted).
        False: nothing is dropped; the caller waits while :attr:`full`.
    t0 : float, optional
        Time of frame 0 on this host's clock (:func:`zaudio.clock.now`); by
        default the time the first block is sent.
    client, outlet : NodeClient, Outlet, optional
        A node that publishes beside other things (a processor) lends its own:
        it then registers the stream itself, and connects and closes them.

    Examples
    --------
    >>> import numpy as np, zaudio                                  # doctest: +SKIP
    >>> with zaudio.Publisher("mic", rate=48000, channels=1) as pub:
    ...     pub.send(np.zeros((480, 1), np.float32))
    """

    def __init__(
        self,
        stream: str,
        *,
        rate: int,
        channels: int = 1,
        proxy: str | None = None,
        keys: Keys | None = None,
        name: str | None = None,
        role: str = "recorder",
        wait: float = 2.0,
        hwm: int = 1000,
        buffer: float = 10.0,
        live: bool = True,
        t0: float | None = None,
        client: NodeClient | None = None,
        outlet: Outlet | None = None,
    ) -> None:
        self.stream = AudioStream(stream, rate, channels)
        self.counters = {"sent": 0, "dropped": 0, "frames": 0, "dropped_frames": 0}
        self._owns_client = client is None
        self.client = client or NodeClient(
            proxy,
            role=role,
            name=name or stream,
            registration=self.registration,
            stats=self.stats,
            keys=keys,
        )
        self._owns_outlet = outlet is None
        self.outlet = outlet or Outlet(keys=keys, hwm=hwm)
        self.wait = wait
        self.t0 = t0
        self.live = live
        self.buffer_frames = max(1, math.ceil(buffer * rate))
        self._held: deque[_Held] = deque()
        self._held_frames = 0
        # the Outlet connection count when a subscriber last wanted our stream
        self._audience = 0
        self._changes = -1  # outlet.changes when `_wants` was computed
        self._wants = False
        self._hold_until: float | None = None
        self._grace_until = 0.0
        self._clear = False  # see send()
        self._endpoints: Endpoints | None = None  # client.endpoints when last connected
        self._closed = False

    def registration(self) -> dict[str, Any]:
        """The registration fields of this stream: ``{"streams": [...]}``."""
        s = self.stream
        return {"streams": [{"name": s.name, "rate": s.rate, "channels": s.channels}]}

    def stats(self) -> dict[str, Any]:
        """Counters: ``sent``, ``frames``, ``dropped``, ``dropped_frames``; ``queued``, ``ready``."""
        return {**self.counters, "queued": len(self._held), "ready": self.outlet.ready}

    @property
    def full(self) -> bool:
        """True while ``buffer`` seconds are held (a caller with ``live=False`` waits)."""
        return self._held_frames >= self.buffer_frames

    @property
    def held(self) -> int:
        """Frames held now, waiting for the bus."""
        return self._held_frames

    def start(self) -> Publisher:
        """Register and wait (at most ``wait`` seconds) for the bus to be ready.

        Raises
        ------
        RequestRefused
            The proxy refused the stream (another live node publishes it).
        """
        if self._owns_client:
            self.client.start()
        deadline = time.monotonic() + self.wait
        while time.monotonic() < deadline:
            if self.client.refused is not None:
                self.close()
                raise self.client.refused
            self.connect()
            if self.outlet.ready and self.client.registered.is_set():
                break
            if self.client.endpoints is None:
                self.client.registered.wait(0.02)
            else:
                self.outlet.wait_ready(min(0.05, max(0.0, deadline - time.monotonic())))
        return self

    def connect(self) -> None:
        """Connect the outlet once ``hello`` told us where (cheap to call often)."""
        endpoints = self._endpoints = self.client.endpoints
        if self._owns_outlet and endpoints is not None and endpoints.pub != self.outlet.endpoint:
            self.outlet.connect(endpoints.pub)

    def now(self) -> float:
        """Current time in the proxy's time base."""
        return self.client.now()

    def skip(self, frames: int, blocks: int = 1) -> None:
        """Account for ``blocks`` blocks (``frames`` frames) lost before they reached us."""
        self.stream.seq += blocks
        self.stream.index += frames

    def send(
        self, block: npt.ArrayLike, t: float | None = None, *, index: int | None = None
    ) -> bool:
        """Publish one block of shape ``(frames, channels)`` (or ``(frames,)`` if mono).

        ``t`` is the time of its first frame in the proxy's time base; by default
        the sample clock: ``t0 + offset + index / rate``. ``index`` overrides the
        running frame index (a processor carrying its input's index).

        Returns True if the block left now; False if it is held until the bus is
        ready (or, beyond ``buffer``, made room by dropping the oldest: counted).
        """
        s = self.stream
        seq = s.seq
        if self.t0 is None:
            self.t0 = clock.now()
        # `_clear`: the previous block left and, looked at right after it, nothing
        # is held and the bus is ready. Then the block goes out before anything else
        # runs: reading the outlet's subscription changes (an enum per look in
        # pyzmq, ~40 us on a cold cache) waits until it has left. If that look then
        # finds the proxy gone, the block may have gone nowhere: it is held and sent
        # again (a receiver that did get it counts the copy as rejected).
        if self._clear or (self.flush() and self.ready()):
            frames = s.encode(block, self._stamp(t, s.index if index is None else index), index)
            events = self.outlet.post(frames)
            if events >= 0:
                # Nothing to read (no subscription change), the same endpoints and
                # still registered: ready() would say what it said before this send.
                client = self.client
                self._clear = (
                    not events & _POLLIN
                    and client.endpoints is self._endpoints
                    and client.registered.is_set()
                ) or self.ready()
                if self._clear or self.outlet.ready:
                    c = self.counters
                    c["sent"] += 1
                    c["frames"] += len(frames[2])
                    return True
            arr = frames[2]
        else:
            arr = s.encode(block, 0.0, index)[2]  # checks the block, advances seq and index
        self._clear = False
        assert not isinstance(arr, bytes)
        self._hold((seq, s.index - len(arr), arr, t))
        return False

    def flush(self) -> bool:
        """Send what is held if the bus takes it; True once nothing is held."""
        held = self._held
        if not held:
            return True
        if not self.ready():
            return False
        s, c, outlet = self.stream, self.counters, self.outlet
        next_seq, next_index = s.seq, s.index
        try:
            while held:
                seq, index, arr, t = held[0]
                s.seq = seq
                if not outlet.send(s.encode(arr, self._stamp(t, index), index)):
                    return False
                held.popleft()
                n = len(arr)
                self._held_frames -= n
                c["sent"] += 1
                c["frames"] += n
        finally:
            s.seq, s.index = next_seq, next_index
        return True

    def discard(self) -> tuple[int, int]:
        """Drop everything held (counted); return ``(blocks, frames)`` dropped."""
        lost = len(self._held), self._held_frames
        self.counters["dropped"] += lost[0]
        self.counters["dropped_frames"] += lost[1]
        self._held.clear()
        self._held_frames = 0
        return lost

    def ready(self) -> bool:
        """True if a block sent now goes out: the bus is ready, we are registered, and
        we are not holding our buffer for subscribers that are reconnecting."""
        outlet = self.outlet
        self.connect()
        outlet.pump()
        if not (outlet.ready and self.client.registered.is_set()):
            return False
        if outlet.changes != self._changes:
            self._changes = outlet.changes
            self._wants = outlet.wants(self.stream.topic)
        if self._audience and outlet.connections != self._audience:
            # Reconnected (the proxy restarted) after we had subscribers. They
            # reconnect within ZeroMQ's reconnect interval (0.1 s): hold what we
            # buffered during the outage for RECONNECT_GRACE, and up to
            # RESUBSCRIBE_WAIT until one is back, rather than flush it into nothing.
            now = time.monotonic()
            if self._hold_until is None:
                self._hold_until = now + RESUBSCRIBE_WAIT
                self._grace_until = now + RECONNECT_GRACE
            if now < self._hold_until and (not self._wants or now < self._grace_until):
                return False
            self._hold_until = None
            self._audience = 0
        if self._wants:
            self._audience = outlet.connections
        return True

    def _stamp(self, t: float | None, index: int) -> float:
        if t is not None:
            return t
        t0 = self.t0
        assert t0 is not None
        return t0 + self.client.offset + index / self.stream.rate

    def _hold(self, item: _Held) -> None:
        held = self._held
        held.append(item)
        self._held_frames += len(item[2])
        if self.live:
            c = self.counters
            while self._held_frames > self.buffer_frames and len(held) > 1:
                old = held.popleft()[2]
                self._held_frames -= len(old)
                c["dropped"] += 1
                c["dropped_frames"] += len(old)

    def close(self, flush: float = 1.0) -> None:
        """Send what is held (waiting up to ``flush`` s), ``disconnect`` and close. Idempotent.

        What is still held after ``flush`` is dropped and counted.
        """
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + flush
        while not self.flush() and time.monotonic() < deadline:
            self.outlet.sock.poll(10)
        self.discard()
        if self._owns_outlet:
            self.outlet.close()
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> Publisher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
