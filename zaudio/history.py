"""The proxy's history: the last ``D`` seconds of every audio stream, for late joiners.

::

    XSUB ==zmq_proxy_steerable (C)==> XPUB tcp://...:P+2  --> live subscribers
                                           inproc://zaudio-history-<random>
                                               |
                                  History thread: SUB "audio/" -> store (deque)
                                               ^ PAIR "drain" / "ok"
    control thread (op "history") -------------+   then snapshot() under the lock

The forwarding loop stays in C: the store is one more subscriber of the proxy's
XPUB, on an inproc endpoint the XPUB binds beside its TCP one (one more pipe per
forwarded message, no copy of the payload in the forwarder). The store's thread
copies each message (topic, header, payload exactly as forwarded) into one deque
in arrival order, stamped with the proxy's monotonic clock when it reads them
(expiry goes by that stamp; ``since`` by the headers' ``t``). It reads in batches
(every :data:`BATCH` seconds at most, whatever the number of streams), so the
proxy's CPU spent on history does not grow with each message's wake-up.

Bounds: a message older than ``seconds`` is dropped (that is keeping ``D``); while
the store holds more than ``max_bytes`` (topic + header + payload), the oldest
message goes first, counted per stream in ``evicted`` (messages) and
``evicted_bytes``. Messages the store never saw (the XPUB dropped them on its
high-water mark while the thread lagged) show as a jump of ``seq`` within a
``src`` and are counted in ``missed``.

The seam: a subscriber asks for history after its live subscription is
confirmed (:func:`~zaudio.bus.confirm_subscriptions`), so every message the
forwarder sent before that subscription took effect was already in the store's
pipe. :meth:`History.snapshot` first has the thread drain its socket (a
``drain`` request on an inproc PAIR, answered once nothing is left to read),
then copies: what it returns reaches at least up to the first live message.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Final

import msgspec
import zmq

from zaudio.names import AUDIO

__all__ = ["DEFAULT_BYTES", "History", "Kept"]

log = logging.getLogger(__name__)

#: The default bound of the whole store (``--history-bytes``): 256 MiB.
DEFAULT_BYTES: Final = 256 * 1024 * 1024
#: The store's receive bound, in messages: far above what the thread lags behind.
RCVHWM: Final = 1_000_000
_DRAIN: Final = b"drain"
#: Seconds the store's thread lets messages gather between two reads (a wake-up
#: costs this thread ~0.1 ms of CPU on a loaded machine, whatever it reads).
BATCH: Final = 0.05
_STOP_POLL: Final = 250  # ms: how often an idle thread looks whether to stop

#: One kept message: arrival (monotonic s), topic, header, payload, bytes in all,
#: and the header's ``t`` and ``t`` + duration (the stream's time base).
Kept = tuple[float, bytes, bytes, bytes, int, float, float]


class _Position(msgspec.Struct, gc=False):
    """The header fields the store reads (the rest is ignored, not parsed)."""

    stream: str = ""
    src: str = ""
    seq: int = -1
    t: float = 0.0
    frames: int = 0
    rate: int = 1


_header: Final = msgspec.json.Decoder(_Position)


class _Stream:
    __slots__ = ("bytes", "evicted", "evicted_bytes", "messages", "missed", "next_seq", "src")

    def __init__(self) -> None:
        self.messages = self.bytes = self.evicted = self.evicted_bytes = self.missed = 0
        self.src = ""
        self.next_seq = -1


class History:
    """The last ``seconds`` of every audio stream the proxy forwards, at most ``max_bytes``.

    Parameters
    ----------
    ctx : zmq.Context
        The proxy's context (the XPUB must be bound to :attr:`address` first).
    address : str
        The inproc endpoint the proxy's XPUB binds.
    seconds : float
        How long a message is kept.
    max_bytes : int
        The bound of the whole store, in bytes of topic + header + payload.
    """

    def __init__(
        self, ctx: zmq.Context[Any], address: str, seconds: float, max_bytes: int = DEFAULT_BYTES
    ) -> None:
        self.seconds = seconds
        self.max_bytes = max_bytes
        self.address = address
        self.lock = threading.Lock()
        self._kept: deque[Kept] = deque()
        self._streams: dict[str, _Stream] = {}
        self._gone = _Stream()  # the counters of streams no longer kept (see _expire)
        self._bytes = 0
        sub: zmq.Socket[Any] = ctx.socket(zmq.SUB)
        sub.linger = 0
        sub.rcvhwm = RCVHWM
        sub.subscribe(AUDIO)
        sub.connect(address)
        tag = os.urandom(8).hex()
        pair: zmq.Socket[Any] = ctx.socket(zmq.PAIR)
        pair.linger = 0
        pair.bind(f"inproc://zaudio-history-drain-{tag}")
        self._ask: zmq.Socket[Any] = ctx.socket(zmq.PAIR)
        self._ask.linger = 0
        self._ask.connect(f"inproc://zaudio-history-drain-{tag}")
        self._sockets = (sub, pair)

    @staticmethod
    def endpoint() -> str:
        """A fresh inproc endpoint for the proxy's XPUB to bind."""
        return f"inproc://zaudio-history-{os.urandom(8).hex()}"

    def start(self) -> threading.Thread:
        """Start the store's thread (it closes its sockets when the context terminates)."""
        thread = threading.Thread(target=self._run, name="zaudio-history", daemon=True)
        thread.start()
        return thread

    # -- the store's thread ------------------------------------------------------

    def _run(self) -> None:
        sub, pair = self._sockets
        poller = zmq.Poller()
        poller.register(sub, zmq.POLLIN)
        poller.register(pair, zmq.POLLIN)
        try:
            while True:
                events = dict(poller.poll(_STOP_POLL))
                if sub in events:
                    self._drain(sub)
                    # let messages gather (one wake-up per BATCH, not per message),
                    # answering a drain request at once meanwhile
                    if pair.poll(int(BATCH * 1000)):
                        self._serve(sub, pair)
                elif pair in events:
                    self._serve(sub, pair)
        except zmq.ContextTerminated:
            pass
        finally:
            for s in (sub, pair):
                s.close(0)

    def _serve(self, sub: zmq.Socket[Any], pair: zmq.Socket[Any]) -> None:
        """A drain request: store everything already forwarded to us, then say so."""
        pair.recv()
        self._drain(sub)
        pair.send(b"ok")

    def _drain(self, sub: zmq.Socket[Any]) -> None:
        """Store every message waiting in the socket (non-blocking)."""
        recv = sub.recv_multipart
        now = time.monotonic()  # what waits now arrived within BATCH: one stamp for all
        while True:
            try:
                frames = recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) == 3:
                self.add(frames[0], frames[1], frames[2], now)

    def add(self, topic: bytes, header: bytes, payload: bytes, now: float) -> None:
        """Keep one message that arrived at ``now`` (monotonic seconds)."""
        size = len(topic) + len(header) + len(payload)
        name = topic[len(AUDIO) : -1].decode("utf-8", "replace")
        try:
            pos = _header.decode(header)
        except (msgspec.DecodeError, msgspec.ValidationError):
            pos = _Position()
        with self.lock:
            st = self._streams.get(name)
            if st is None:
                st = self._streams[name] = _Stream()
            if pos.src == st.src and st.next_seq >= 0 and pos.seq > st.next_seq:
                st.missed += pos.seq - st.next_seq
            st.src, st.next_seq = pos.src, pos.seq + 1
            end = pos.t + pos.frames / pos.rate if pos.rate > 0 else pos.t
            self._kept.append((now, topic, header, payload, size, pos.t, end))
            st.messages += 1
            st.bytes += size
            self._bytes += size
            self._expire(now)

    def _expire(self, now: float) -> None:
        """Drop what is older than ``seconds``, then the oldest while over ``max_bytes`` (lock held)."""
        kept = self._kept
        oldest = now - self.seconds
        while kept and (kept[0][0] < oldest or self._bytes > self.max_bytes):
            arrived, topic, _, _, size, _, _ = kept.popleft()
            name = topic[len(AUDIO) : -1].decode("utf-8", "replace")
            st = self._streams[name]
            st.messages -= 1
            st.bytes -= size
            self._bytes -= size
            if arrived >= oldest:  # still within D: evicted by the byte bound
                st.evicted += 1
                st.evicted_bytes += size
            if not st.messages:  # nothing kept: its counters go to the totals only
                gone = self._gone
                gone.evicted += st.evicted
                gone.evicted_bytes += st.evicted_bytes
                gone.missed += st.missed
                del self._streams[name]

    # -- the control thread --------------------------------------------------------

    def snapshot(
        self, prefixes: Sequence[bytes], since: float, timeout: float = 1.0
    ) -> tuple[list[Kept], float, float]:
        """The kept messages of the topics starting with one of ``prefixes``: the last ``since`` s.

        Per topic, the messages whose header ``t`` is at most ``since`` before the
        end of the newest one (the stream's own clock: exact, whatever the batches
        the store read them in), among those that arrived at most ``since`` (and
        :data:`BATCH`) ago (a stream that stopped long ago gives nothing). In
        arrival order, after the store's thread drained its socket (at most
        ``timeout`` s). Returns them, the age in seconds of the first one at the
        proxy, and how far back the store keeps those topics (the newest end
        minus the oldest ``t``, 0.0 when none): more than ``since``, the history
        covers all of it. Called by one thread at a time (the control thread).
        """
        ask = self._ask
        ask.send(_DRAIN)
        if ask.poll(int(timeout * 1000)):
            ask.recv()
        else:  # pragma: no cover - only if the store's thread is stuck
            log.warning("history: the store did not drain within %g s", timeout)
        now = time.monotonic()
        with self.lock:
            self._expire(now)
            kept = list(self._kept)
        arrived = now - since - BATCH
        wanted = tuple(prefixes)
        matching = [k for k in kept if k[1].startswith(wanted)]
        live: dict[bytes, float] = {}  # topic -> end of its newest message
        first: dict[bytes, float] = {}  # topic -> t of its oldest message
        for k in matching:
            live[k[1]] = max(live.get(k[1], k[6]), k[6])
            first.setdefault(k[1], k[5])
        out = [k for k in matching if k[0] >= arrived and k[5] >= live[k[1]] - since - 1e-9]
        reach = max((live[t] - first[t] for t in live), default=0.0)
        return out, (now - out[0][0]) if out else 0.0, reach

    def close(self) -> None:
        """Close the control thread's end of the drain channel (in the control thread)."""
        self._ask.close(0)

    def stats(self) -> dict[str, Any]:
        """What is kept and what was evicted: in all, and per stream kept now.

        A stream whose every message expired leaves ``streams`` (so that names
        cannot pile up); its counters stay in the totals.
        """
        now = time.monotonic()
        gone = self._gone
        with self.lock:
            oldest = now - self._kept[0][0] if self._kept else 0.0
            streams = {
                name: {
                    "messages": st.messages,
                    "bytes": st.bytes,
                    "evicted": st.evicted,
                    "evicted_bytes": st.evicted_bytes,
                    "missed": st.missed,
                }
                for name, st in self._streams.items()
            }
            return {
                "seconds": self.seconds,
                "max_bytes": self.max_bytes,
                "messages": len(self._kept),
                "bytes": self._bytes,
                "oldest": round(oldest, 3),
                "evicted": gone.evicted + sum(s["evicted"] for s in streams.values()),
                "evicted_bytes": gone.evicted_bytes
                + sum(s["evicted_bytes"] for s in streams.values()),
                "missed": gone.missed + sum(s["missed"] for s in streams.values()),
                "streams": streams,
            }
