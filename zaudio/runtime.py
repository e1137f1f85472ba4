"""The processor runtime: the per-block loop behind ``zaudio process`` and :class:`Processor`.

One processor, one process (or thread of yours)::

    SUB socket --(worker reads it while idle)--> decode, gap check --> user fn --> results / audio
         \\--(helper drains it while fn is slow)--> bounded queue --/

The worker thread reads the socket itself while it has nothing to do: no
hand-off between threads per block, which is what keeps latency close to a
plain SUB socket (see PERF.md). Only while one call of the user function has
been running longer than the audio it was given (and at least
:data:`SLOW_CALL`), i.e. the function is falling behind live, does a helper
thread (which looks every :data:`TICK` seconds) take the socket
(under a lock: a ZeroMQ socket may move between threads with a memory barrier,
never be used by two at once) and drain it into a bounded queue, so that the
``--on-overrun`` policy, not ZeroMQ's queues, decides what is lost, and every
loss is counted. When the call returns, the worker takes the socket back and
serves the queue first.

Blocks handed to the user are read-only views of the received ZeroMQ frame
(no copy); windows (``window=``) are copies cut by :class:`~zaudio.windows.Windower`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

import msgspec
import numpy as np
import zmq

from zaudio.bus import Inlet, Outlet, confirm_subscriptions, recv_message
from zaudio.client import NodeClient, request
from zaudio.endpoints import control_endpoint, resolve
from zaudio.errors import (
    ConfigError,
    LocalProtocolError,
    ProcessorFailed,
    ProxyUnreachable,
    RemoteProtocolError,
    ZaudioError,
)
from zaudio.importer import Loaded, default_name, load_processor
from zaudio.protocol import (
    AudioHeader,
    AudioStream,
    ResultStream,
    _is_name,
    decode,
    subscription,
    validate_name,
)
from zaudio.security import Keys
from zaudio.units import parse_block
from zaudio.windows import Windower

__all__ = ["Connection", "Info", "Processor", "run_processor", "windows"]

log = logging.getLogger(__name__)

#: Seconds between the helper's looks at the worker: while calls run slow, and otherwise.
TICK = 0.02
TICK_IDLE = 0.1
#: A call must run at least this long (and longer than its audio) to count as slow.
SLOW_CALL = 0.005
#: Seconds a blocking receive waits before the loop checks whether to stop.
IDLE = 0.1
#: Seconds between two logged failures of the user function (others are counted).
ERROR_LOG_INTERVAL = 5.0

Overrun = Literal["drop-oldest", "drop-newest"]
OnError = Literal["log", "stop"]


class Info(msgspec.Struct, frozen=True, gc=False):
    """What a processor knows about the block (or window) it is given.

    Attributes
    ----------
    v, stream, src, seq, index, t, rate, channels, frames
        The audio header's fields (PROTOCOL.md); for a window, those of its first
        frame (``index`` and ``t`` of that frame, ``seq`` of the block holding it)
        and ``frames`` the window length.
    gap : bool
        Frames of this stream were lost just before this block or window (upstream,
        or dropped by this processor's queue); a window after a gap starts afresh.
    restart : bool
        The first block of a new publisher run (a new ``src``) after an earlier one.
    """

    v: int
    stream: str
    src: str
    seq: int
    index: int
    t: float
    rate: int
    channels: int
    frames: int
    gap: bool = False
    restart: bool = False


class _Track:
    """Where a stream's next message should be: ``src``, ``seq``, ``index``."""

    __slots__ = ("index", "seq", "src")

    def __init__(self, h: AudioHeader) -> None:
        self.src = h.src
        self.seq = h.seq + 1
        self.index = h.index + h.frames


def _topic_patterns(topics: str | Iterable[str] | None) -> list[str]:
    if topics is None:
        return ["*"]
    if isinstance(topics, str):
        return [topics]
    return list(topics) or ["*"]


class Connection:
    """The data sockets of a receiving node: an inlet subscribed and confirmed, an outlet.

    Used by :class:`Processor` and :func:`zaudio.subscribe`. Waits (while
    ``stop`` is clear) for the proxy to answer and for the subscriptions to be in
    effect at the proxy.
    """

    def __init__(
        self,
        proxy: str | None,
        topics: Sequence[str],
        *,
        keys: Keys | None,
        hwm: int = 10_000,
        stop: threading.Event | None = None,
    ) -> None:
        self.control = control_endpoint(proxy or os.environ.get("ZAUDIO_PROXY"))
        self.prefixes = []
        for pattern in topics:
            try:
                self.prefixes.append(subscription(pattern))
            except LocalProtocolError as exc:
                raise ConfigError(f"invalid --topic {pattern!r}: {exc}") from None
        self.keys = keys
        self.stop = stop or threading.Event()
        self.inlet = Inlet(keys=keys, hwm=hwm)
        self.outlet = Outlet(keys=keys)
        self.sock = self.inlet.sock

    def open(self) -> bool:
        """Hello, connect, subscribe, confirm. False if stopped before it completed."""
        warned = False
        while not self.stop.is_set():
            try:
                hello = request(self.control, {"op": "hello"}, timeout=1.0, keys=self.keys)
                break
            except ProxyUnreachable as exc:
                if not warned:
                    log.warning("%s; retrying", exc)
                    warned = True
                self.stop.wait(0.2)
        else:
            return False
        self.inlet.connect(resolve(str(hello["sub"]), self.control))
        self.outlet.connect(resolve(str(hello["pub"]), self.control))
        for prefix in self.prefixes:
            self.inlet.subscribe(prefix)
        while not self.stop.is_set():
            if confirm_subscriptions(self.inlet, self.outlet, 0.5):
                return True
        return False

    def matching_streams(self) -> list[dict[str, Any]]:
        """Streams the proxy lists now that these subscriptions receive (best effort)."""
        try:
            streams = request(self.control, {"op": "list"}, timeout=1.0, keys=self.keys)["streams"]
        except (ZaudioError, KeyError):
            return []
        out = []
        for s in streams if isinstance(streams, list) else []:
            topic = b"audio/" + str(s.get("name")).encode() + b"\0"
            if any(topic.startswith(p) for p in self.prefixes):
                out.append(s)
        return out

    def close(self, linger: float = 0.5) -> None:
        self.inlet.close()
        self.outlet.close(linger)


class Processor:
    """Run a function on every block (or window) of the streams it subscribes to.

    Parameters
    ----------
    fn : callable, class or str
        ``fn(block)`` or ``fn(block, info)``; a class (instantiated once with
        ``params``; optional ``setup(info)``, ``__call__``/``process``, ``close()``);
        or an import string (``"mymod:fn"``, ``"file.py:fn"``, ``"level"``).
    topics : str or list of str
        Stream names (exact), prefixes (``"lab-a/"``) or ``"*"`` (every audio
        stream, the default).
    name : str, optional
        The processor's name (results go to ``result/<name>``); by default the
        attribute name.
    output : str, optional
        The audio stream arrays returned by ``fn`` are published as; default ``name``.
    window, hop : str or float or int, optional
        Re-block into windows: a duration (``"25ms"``, seconds as a float) or a
        frame count (int or ``"1200"``); ``hop`` defaults to ``window``.
    proxy : str, optional
        Control endpoint; ``ZAUDIO_PROXY`` or ``tcp://127.0.0.1:5555`` by default.
    keys : Keys, optional
        CurveZMQ client keys.
    params : dict, optional
        Keyword arguments for the class (or bound to the function).
    on_overrun : {"drop-oldest", "drop-newest"}
        What the bounded queue drops while ``fn`` is slower than the stream.
    queue : int
        Capacity of that queue, in messages.
    on_error : {"log", "stop"}
        A raising ``fn``: log (rate-limited), count and go on; or stop
        (:meth:`run` raises :class:`ProcessorFailed`).

    Examples
    --------
    >>> import numpy as np, zaudio                                  # doctest: +SKIP
    >>> def rms(block):
    ...     return float(np.sqrt(np.mean(block ** 2)))
    >>> zaudio.run_processor(rms, topics="mic")                     # until Ctrl-C
    """

    def __init__(
        self,
        fn: Any,
        *,
        topics: str | Iterable[str] | None = None,
        name: str | None = None,
        output: str | None = None,
        window: str | float | None = None,
        hop: str | float | None = None,
        proxy: str | None = None,
        keys: Keys | None = None,
        params: dict[str, Any] | None = None,
        on_overrun: Overrun = "drop-oldest",
        queue: int = 100,
        on_error: OnError = "log",
    ) -> None:
        if on_overrun not in ("drop-oldest", "drop-newest"):
            raise ConfigError(f"invalid on_overrun {on_overrun!r}: use drop-oldest or drop-newest")
        if on_error not in ("log", "stop"):
            raise ConfigError(f"invalid on_error {on_error!r}: use log or stop")
        if queue < 1:
            raise ConfigError(f"invalid queue size {queue}: use at least 1")
        if hop is not None and window is None:
            raise ConfigError("--hop needs --window")
        if name is None:
            name = default_name(fn) if isinstance(fn, str) else getattr(fn, "__name__", None)
            if not isinstance(name, str) or not _is_name(name):
                name = "processor"  # a lambda, a callable object
        self.name = _valid(name, "processor")
        self.output = _valid(output or self.name, "output stream")
        self._explicit_output = output is not None
        self.topics = _topic_patterns(topics)
        self.window = window
        self.hop = hop if hop is not None else window
        # Checks the window spec now (at 48 kHz) so a typo fails before connecting.
        if window is not None:
            _frames(window, 48000, "window")
            _frames(hop if hop is not None else window, 48000, "hop")
        self.loaded: Loaded = load_processor(fn, params)
        self.keys = keys
        self.proxy = proxy
        self.on_overrun = on_overrun
        self.capacity = queue
        self.on_error = on_error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._queue: deque[tuple[AudioHeader, Any]] = deque()
        self._lock = threading.Lock()
        self._busy = 0.0  # perf_counter() when the running call started, 0.0 when idle
        self._budget = SLOW_CALL  # seconds of audio the running call was given
        # per stream: (messages, frames) our queue dropped since the last delivery
        self._own_drops: dict[str, tuple[int, int]] = {}
        self._seen: dict[str, _Track] = {}
        self._windows: dict[str, Windower] = {}
        self._outputs: list[str] = [self.output]
        self._audio_out: AudioStream | None = None
        self._results = ResultStream(self.name)
        self._set_up = False
        self._last_error_log = -ERROR_LOG_INTERVAL
        self._unlogged_errors = 0
        self.received = 0
        self.processed = 0
        self.dropped = 0
        self.gaps = 0
        self.lost_frames = 0
        self.failed = 0
        self.malformed = 0
        self.ignored = 0
        self.published = 0
        self.unsent = 0
        self._last_end = 0.0  # end time (t + duration) of the last block processed
        self._last_done = 0.0  # perf_counter() when its call returned
        self._proc_total = 0.0
        self._audio_total = 0.0
        self.client: NodeClient | None = None
        self.conn: Connection | None = None
        #: what ended a background run (:meth:`start`) with an error, if anything
        self.error: BaseException | None = None

    # -- counters ------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """The counters heartbeats carry (and ``zaudio ls`` shows)."""
        n = self.processed
        return {
            "received": self.received,
            "processed": n,
            "dropped": self.dropped,
            "queued": len(self._queue),
            "gaps": self.gaps,
            "lost_frames": self.lost_frames,
            "errors": self.failed + self.malformed,
            "failed": self.failed,
            "malformed": self.malformed,
            "ignored": self.ignored,
            "published": self.published,
            "unsent": self.unsent,
            "lag": self._lag(),
            "proc_time": self._proc_total / n if n else None,
            "rtf": self._proc_total / self._audio_total if self._audio_total else None,
        }

    def _lag(self) -> float | None:
        """Seconds behind live when the last call finished: its end time minus the block's."""
        if self.client is None or not self.processed:
            return None
        finished = self.client.now() - (time.perf_counter() - self._last_done)
        return finished - self._last_end

    def _registration(self) -> dict[str, Any]:
        topics = [p.decode() for p in self.conn.prefixes] if self.conn else []
        return {"topics": topics, "outputs": list(self._outputs)}

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> Processor:
        """Run in a background thread (see :meth:`run`); stop it with :meth:`stop`."""
        self._thread = threading.Thread(target=self._run_thread, name="zaudio-processor")
        self._thread.start()
        return self

    def _run_thread(self) -> None:
        try:
            self.run()
        except Exception as exc:
            self.error = exc
            log.error("processor %r stopped: %s", self.name, exc)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask :meth:`run` to finish; wait for the background thread if :meth:`start` made one."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self) -> Processor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def ready(self) -> bool:
        """True once subscribed (in effect at the proxy) and registered."""
        return self.client is not None and self.client.registered.is_set()

    def run(self, stop: threading.Event | None = None) -> None:
        """Connect, register and process blocks until ``stop`` (or :meth:`stop`) is set.

        Raises
        ------
        ProcessorFailed
            ``on_error="stop"`` and the function raised.
        RequestRefused
            The proxy refused the registration (the ``output`` name is taken).
        """
        if stop is not None:
            self._stop = stop
        conn = self.conn = Connection(self.proxy, self.topics, keys=self.keys, stop=self._stop)
        helper: threading.Thread | None = None
        try:
            if not conn.open():
                return
            self.client = NodeClient(
                self.proxy,
                role="processor",
                name=self.name,
                registration=self._registration,
                stats=self.stats,
                keys=self.keys,
            ).start()
            if not self._await_registration():
                return
            known = conn.matching_streams()
            if known:
                log.info(
                    "processor %r on %s",
                    self.name,
                    ", ".join(f"{s['name']} ({s['rate']} Hz, {s['channels']} ch)" for s in known),
                )
            else:
                log.info("processor %r waiting for streams matching %s", self.name, self.topics)
            helper = threading.Thread(target=self._drain_while_slow, name="zaudio-drain")
            helper.daemon = True
            helper.start()
            self._loop()
        finally:
            self._stop.set()
            if helper is not None:
                helper.join(2 * TICK + 1)
            self._close_user()
            if self.client is not None:
                self.client.close()
            conn.close()

    def _await_registration(self) -> bool:
        client = self.client
        assert client is not None
        while not self._stop.is_set():
            if client.registered.wait(0.05):
                return True
            refused = client.refused
            if refused is not None:
                if refused.code == "stream_taken" and not self._explicit_output and self._outputs:
                    # Another node already owns our default output name: run
                    # without it; arrays returned are then counted as unsent.
                    log.warning(
                        "output stream %r is taken; processor %r publishes no audio (%s)",
                        self.output,
                        self.name,
                        refused,
                    )
                    self._outputs = []
                    client.refused = None
                    continue
                raise refused
        return False

    def _close_user(self) -> None:
        close = self.loaded.close
        if close is not None:
            try:
                close()
            except Exception:
                log.exception("close() of processor %r failed", self.name)

    # -- receiving ---------------------------------------------------------------

    def _accept(self, frames: list[zmq.Frame]) -> tuple[AudioHeader, Any] | None:
        """Decode one message; None if it is dropped (malformed, or not audio)."""
        try:
            h, block = decode(frames)
        except RemoteProtocolError as exc:
            self.malformed += 1
            if self.malformed == 1 or log.isEnabledFor(logging.DEBUG):
                log.warning("dropped a malformed message (%s); counting the rest", exc)
            return None
        if type(h) is not AudioHeader:
            self.ignored += 1
            return None
        self.received += 1
        return h, block

    def _enqueue(self, item: tuple[AudioHeader, Any]) -> None:
        q = self._queue
        if len(q) >= self.capacity:
            self.dropped += 1
            gone = item if self.on_overrun == "drop-newest" else q.popleft()
            # remembered so that the gap it leaves is not counted as upstream loss
            h = gone[0]
            msgs, frames = self._own_drops.get(h.stream, (0, 0))
            self._own_drops[h.stream] = (msgs + 1, frames + h.frames)
            if gone is item:
                return
        q.append(item)

    def _follow(self, h: AudioHeader) -> tuple[bool, bool]:
        """Track the stream of ``h``; return ``(gap, restart)`` for this block."""
        track = self._seen.get(h.stream)
        if track is None or track.src != h.src:
            self._seen[h.stream] = _Track(h)
            self._own_drops.pop(h.stream, None)
            return False, track is not None
        gap = h.seq != track.seq or h.index != track.index
        if gap:
            self._discontinuity(h, track)
        track.seq = h.seq + 1
        track.index = h.index + h.frames
        return gap, False

    def _discontinuity(self, h: AudioHeader, track: _Track) -> None:
        """Count the blocks and frames lost upstream before ``h`` (not by our own queue)."""
        own_msgs, own_frames = self._own_drops.pop(h.stream, (0, 0))
        missing = h.seq - track.seq - own_msgs
        lost = h.index - track.index - own_frames
        if missing > 0 or lost > 0:
            self.gaps += missing if missing > 0 else 1
            self.lost_frames += lost if lost > 0 else 0

    def _drain_nowait(self) -> None:
        """Move every message waiting in the socket into the queue (lock held)."""
        sock = self.conn.sock  # type: ignore[union-attr]
        while sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            item = self._accept(frames)
            if item is not None:
                self._enqueue(item)

    def _drain_while_slow(self) -> None:
        """Helper thread: while one user call runs long, keep the socket drained."""
        stop = self._stop
        lock = self._lock
        sock = self.conn.sock  # type: ignore[union-attr]
        tick = TICK_IDLE
        last_slow = -1.0
        # Looking costs a thread wake-up; look often only while calls run slow.
        while not stop.wait(tick):
            started = self._busy
            now = time.perf_counter()
            if not started or now - started < self._budget:
                if now - last_slow > 1.0:
                    tick = TICK_IDLE
                continue
            tick, last_slow = TICK, now
            with lock:
                while self._busy == started and not stop.is_set():
                    if sock.poll(2):
                        self._drain_nowait()

    # -- the loop ----------------------------------------------------------------

    def _loop(self) -> None:
        sock = self.conn.sock  # type: ignore[union-attr]
        sock.rcvtimeo = int(IDLE * 1000)
        if self.window is not None:
            self._loop_windows()
            return
        # The hot path: every name is a local, nothing allocated but Info.
        is_set = self._stop.is_set
        lock = self._lock
        q = self._queue
        recv = recv_message
        again = zmq.Again
        accept = self._accept
        follow = self._follow
        perf = time.perf_counter
        call = self.loaded.call
        takes_info = self.loaded.takes_info
        item: tuple[AudioHeader, Any] | None
        while not is_set():
            with lock:
                if q:
                    item = q.popleft()
                else:
                    try:
                        frames = recv(sock)
                    except again:
                        continue
                    # A burst the function keeps up with stays in ZeroMQ's queue;
                    # only a call that falls behind makes the helper apply the
                    # overrun policy.
                    item = accept(frames)
            if item is None:
                continue
            h, block = item
            gap, restart = follow(h)
            info = Info(
                h.v, h.stream, h.src, h.seq, h.index, h.t, h.rate, h.channels, h.frames,
                gap, restart,
            )  # fmt: skip
            if not self._set_up:
                self._setup(info)
            audio = h.frames / h.rate
            self._budget = audio if audio > SLOW_CALL else SLOW_CALL
            started = self._busy = perf()
            try:
                out = call(block, info) if takes_info else call(block)
            except Exception as exc:
                self._busy = 0.0
                self._failed(exc, info)
                continue
            done = perf()
            self._busy = 0.0
            self._proc_total += done - started
            self._audio_total += audio
            self.processed += 1
            self._last_end = h.t + audio
            self._last_done = done
            if out is not None:
                self._publish(out, info)

    def _next(self) -> tuple[AudioHeader, Any] | None:
        """The next message: from the queue, else from the socket (blocking up to IDLE)."""
        with self._lock:
            q = self._queue
            if q:
                return q.popleft()
            try:
                frames = self.conn.sock.recv_multipart(copy=False)  # type: ignore[union-attr]
            except zmq.Again:
                return None
            return self._accept(frames)

    def _loop_windows(self) -> None:
        stop = self._stop
        while not stop.is_set():
            item = self._next()
            if item is None:
                continue
            h, block = item
            gap, restart = self._follow(h)
            for data, info in windows(self._windows, h, block, gap, restart, self.window, self.hop):
                self._call(data, info)

    def _setup(self, info: Info) -> None:
        self._set_up = True
        setup = self.loaded.setup
        if setup is not None:
            try:
                setup(info)
            except ConfigError:
                raise  # a parameter that does not fit this stream: one line, exit 2
            except Exception as exc:
                raise ProcessorFailed(
                    f"setup() of processor {self.name!r} failed: {exc!r}"
                ) from exc

    def _call(self, block: Any, info: Info) -> None:
        """One call on a window (the plain path is inlined in :meth:`_loop`)."""
        loaded = self.loaded
        if not self._set_up:
            self._setup(info)
        audio = info.frames / info.rate
        self._budget = audio if audio > SLOW_CALL else SLOW_CALL
        started = self._busy = time.perf_counter()
        try:
            out = loaded.call(block, info) if loaded.takes_info else loaded.call(block)
        except Exception as exc:
            self._busy = 0.0
            self._failed(exc, info)
            return
        done = time.perf_counter()
        self._busy = 0.0
        self._proc_total += done - started
        self._audio_total += audio
        self.processed += 1
        self._last_end = info.t + audio
        self._last_done = done
        if out is not None:
            self._publish(out, info)

    def _failed(self, exc: Exception, info: Info) -> None:
        self.failed += 1
        if self.on_error == "stop":
            log.error(
                "processor %r failed on %s seq %d", self.name, info.stream, info.seq, exc_info=exc
            )
            raise ProcessorFailed(
                f"processor {self.name!r} raised on stream {info.stream!r} seq {info.seq}: "
                f"{exc!r} (--on-error stop)"
            ) from exc
        now = time.monotonic()
        if now - self._last_error_log >= ERROR_LOG_INTERVAL:
            more = (
                f" ({self._unlogged_errors} more failures not shown)"
                if self._unlogged_errors
                else ""
            )
            log.error(
                "processor %r raised on stream %r seq %d%s",
                self.name,
                info.stream,
                info.seq,
                more,
                exc_info=exc,
            )
            self._last_error_log = now
            self._unlogged_errors = 0
        else:
            self._unlogged_errors += 1

    # -- publishing ---------------------------------------------------------------

    def _publish(self, out: Any, info: Info) -> None:
        conn = self.conn
        assert conn is not None
        try:
            if isinstance(out, np.ndarray) and out.dtype == np.float32:
                frames = self._audio_frames(out, info)
                if frames is None:
                    return
            else:
                frames = self._results.encode(
                    out, stream=info.stream, index=info.index, frames=info.frames, t=info.t
                )
        except LocalProtocolError as exc:
            self.failed += 1
            self._failed_publish(exc, info)
            return
        outlet = conn.outlet
        outlet.pump()
        if outlet.send(frames):
            self.published += 1
        else:
            self.unsent += 1

    def _audio_frames(self, out: np.ndarray[Any, Any], info: Info) -> list[Any] | None:
        if not self._outputs:
            self.unsent += 1
            return None
        channels = out.shape[1] if out.ndim == 2 else 1
        stream = self._audio_out
        if stream is None or stream.rate != info.rate or stream.channels != channels:
            stream = self._audio_out = AudioStream(self.output, info.rate, channels)
            if self.client is not None:
                self.client.update(
                    streams=[{"name": self.output, "rate": info.rate, "channels": channels}]
                )
        return stream.encode(out, info.t, index=info.index)

    def _failed_publish(self, exc: Exception, info: Info) -> None:
        now = time.monotonic()
        if now - self._last_error_log >= ERROR_LOG_INTERVAL:
            log.error(
                "processor %r returned something it cannot publish (stream %r seq %d): %s",
                self.name,
                info.stream,
                info.seq,
                exc,
            )
            self._last_error_log = now


def windows(
    windowers: dict[str, Windower],
    h: AudioHeader,
    block: Any,
    gap: bool,
    restart: bool,
    window: Any,
    hop: Any,
) -> Iterator[tuple[Any, Info]]:
    """Feed one block to its stream's :class:`Windower`; yield ``(window, info)``.

    A gap or restart is reported on the next window that is emitted, even when
    the block that revealed it was too short to complete one.
    """
    w = windowers.get(h.stream)
    if w is None or w.channels != h.channels or restart:
        w = windowers[h.stream] = Windower(
            _frames(window, h.rate, "window"), _frames(hop, h.rate, "hop"), h.channels
        )
    elif gap:
        w.reset()
    gap = w.gap = w.gap or gap
    restart = w.restart = w.restart or restart
    for data, index, seq, t in w.push(block, h.index, h.seq, h.t, h.rate):
        info = Info(
            h.v, h.stream, h.src, seq, index, t, h.rate, h.channels, data.shape[0],
            gap, restart,
        )  # fmt: skip
        gap = restart = w.gap = w.restart = False
        yield data, info


def _valid(name: str, what: str) -> str:
    try:
        return validate_name(name, what)
    except LocalProtocolError as exc:
        raise ConfigError(str(exc)) from None


def _frames(spec: str | float | int, rate: int, what: str) -> int:
    if isinstance(spec, float):
        spec = f"{spec}s"
    return parse_block(spec, rate, what)


def run_processor(fn: Any, *, stop: threading.Event | None = None, **options: Any) -> Processor:
    """Run ``fn`` as a processor in this thread until ``stop`` is set (or Ctrl-C).

    Takes the keyword arguments of :class:`Processor`; returns it (with its
    counters) once stopped.
    """
    proc = Processor(fn, **options)
    try:
        proc.run(stop)
    except KeyboardInterrupt:
        pass
    return proc
