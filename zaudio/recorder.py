"""The recorder: one source becomes one audio stream on the bus, whatever the network does.

::

    source --put--> capture queue --> sender thread (zaudio.sender): Publisher stamps
    (its own thread       (bounded)     seq/index/t, holds an outage --> Outlet (XPUB) --> proxy
     or PortAudio's)                    NodeClient registers + heartbeats

The source's thread only enqueues; it never waits on the network (a pull source
that never waits on I/O, a signal or a file, runs in the sender thread itself:
no queue). The sender thread owns the :class:`~zaudio.publisher.Publisher`,
which holds blocks until the bus is *ready* (the proxy's READY handshake and
our registration), so a subscriber that was listening before we started gets
``index`` 0; while the proxy is down or restarting it keeps up to ``buffer``
seconds and drops the oldest beyond that, counted, like every publisher.
``index`` counts captured frames from 0, lost ones included (a block the capture
queue had no room for is :meth:`~zaudio.publisher.Publisher.skip`-ped), so a
receiver sees every gap; ``t`` is ``t0 + index / rate`` on the sample clock, in
the proxy's time base.

Each counter has one owner: the source's thread counts capture-queue overflows,
the sender thread (its Publisher) everything sent and dropped after it;
:attr:`Recorder.counters` adds them up when read.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from zaudio import clock
from zaudio.client import NodeClient
from zaudio.errors import ConfigError, LocalProtocolError, ZaudioError
from zaudio.protocol import validate_name
from zaudio.publisher import Publisher
from zaudio.security import Keys
from zaudio.sender import END, Sender
from zaudio.sources import DEFAULT_BLOCK, Block, Source, open_source

__all__ = ["Recorder"]

log = logging.getLogger(__name__)


class Recorder:
    """Capture a source and publish it as one audio stream.

    Parameters
    ----------
    source : Source or str
        A :class:`~zaudio.sources.Source`, or a ``--source`` spec (``"mic"``,
        ``"sine:440"``, ``"file:a.wav"``, ``"-"`` ...) built with the format
        options below.
    stream : str
        The stream name (topic ``audio/<stream>``); also the node's name.
    proxy : str, optional
        Control endpoint; ``ZAUDIO_PROXY`` or ``tcp://127.0.0.1:5555`` by default.
    keys : Keys, optional
        CurveZMQ client keys.
    duration : float, optional
        Seconds of audio to publish (exactly ``round(duration * rate)`` frames),
        then finish. None: until the source ends or :meth:`stop`.
    buffer : float
        Seconds of audio kept while the bus is not ready; beyond it the oldest
        blocks are dropped (counted), or, for a source that is not live
        (``fast``), the source waits.
    rate, channels, block, fast, loop
        Format and pacing when ``source`` is a spec (see
        :func:`~zaudio.sources.open_source`).
    flush : float
        Seconds :meth:`stop` waits for the bus to take what is still buffered.
    register_wait : float
        Seconds :meth:`start` waits for the registration before capturing, so
        that a refusal (stream name taken) comes first; capture starts anyway
        after it when the proxy does not answer.

    Examples
    --------
    >>> with zaudio.Recorder("sine:440", stream="tone", duration=1.0) as rec:  # doctest: +SKIP
    ...     rec.wait()
    """

    def __init__(
        self,
        source: Source | str = "mic",
        *,
        stream: str = "mic",
        proxy: str | None = None,
        keys: Keys | None = None,
        duration: float | None = None,
        buffer: float = 10.0,
        rate: int | None = None,
        channels: int | None = None,
        block: str | int = DEFAULT_BLOCK,
        fast: bool = False,
        loop: bool = False,
        flush: float = 2.0,
        register_wait: float = 0.5,
        hwm: int = 1000,
    ) -> None:
        try:
            validate_name(stream)
        except LocalProtocolError as exc:
            raise ConfigError(str(exc)) from None
        if buffer <= 0:
            raise ConfigError(f"invalid buffer {buffer!r}: must be more than 0 seconds")
        if isinstance(source, str):
            source = open_source(
                source, rate=rate, channels=channels, block=block, fast=fast, loop=loop
            )
        self.source = source
        self.keys = keys
        self.flush = flush
        self.register_wait = register_wait
        rate_ = source.rate
        self.max_frames = None if duration is None else max(1, round(duration * rate_))
        # source thread: frames and blocks captured, and lost in the capture queue
        self._captured = 0
        self._blocks = 0
        self._t0: float | None = None
        self._overflows = 0
        self._overflow_frames = 0
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._ended = False
        self._started = False
        self._stopped = False
        self.client = NodeClient(
            proxy,
            role="recorder",
            name=stream,
            registration=self._registration,
            stats=self.stats,
            keys=keys,
        )
        # Made here, used only by the sender thread once start() has started it.
        self.publisher = Publisher(
            stream,
            rate=rate_,
            channels=source.channels,
            keys=keys,
            hwm=hwm,
            buffer=max(buffer, source.block / rate_),
            live=source.live,
            client=self.client,
        )
        self.stream = self.publisher.stream
        self.sender = Sender(source, self.client, self.publisher, flush, self._fail)
        self._queue = self.sender.queue

    # -- public ------------------------------------------------------------

    @property
    def rate(self) -> int:
        return self.stream.rate

    @property
    def channels(self) -> int:
        return self.stream.channels

    @property
    def counters(self) -> dict[str, int]:
        """``sent``, ``frames``, ``dropped``, ``dropped_frames``, ``queue_overflows``.

        ``dropped`` counts every block lost on our side: beyond the buffer while
        the bus was away (counted by the sender's Publisher), or with no room in
        the capture queue (counted by the source's thread, ``queue_overflows``).
        """
        c = self.publisher.counters
        return {
            "sent": c["sent"],
            "frames": c["frames"],
            "dropped": c["dropped"] + self._overflows,
            "dropped_frames": c["dropped_frames"] + self._overflow_frames,
            "queue_overflows": self._overflows,
        }

    def stats(self) -> dict[str, Any]:
        """Counters for heartbeats: :attr:`counters`, ``overflows``, ``queue`` ...

        ``overflows`` counts the input overflows the device reported; ``queue``
        the blocks waiting to be sent now.
        """
        return {
            **self.counters,
            "overflows": 0,
            **self.source.stats(),
            "queue": self.publisher.stats()["queued"] + self._queue.qsize(),
            "captured": self._captured,
        }

    def start(self) -> Recorder:
        """Start the node client, the sender thread and the capture."""
        if self._started:
            return self
        self._started = True
        self.client.start()
        self.sender.start(self)
        try:
            self._await_registration()
            if self.sender.inline:
                self.sender.capture.set()  # the sender thread runs the source
            else:
                self.source.start(self)
        except BaseException:
            self.stop()
            raise
        log.info(
            "recording %s as stream %r (%d Hz, %d ch, %d-frame blocks)",
            self.source.description,
            self.stream.name,
            self.rate,
            self.channels,
            self.source.block,
        )
        return self

    def _await_registration(self) -> None:
        # A live proxy answers within milliseconds: learn a refusal (stream name
        # taken) before capturing. A proxy that is not up does not delay capture
        # beyond ``register_wait``: blocks are buffered until it comes.
        client = self.client
        deadline = time.monotonic() + self.register_wait
        while not client.registered.wait(0.01):
            if client.refused is not None:
                raise client.refused
            if client.error is not None or time.monotonic() > deadline:
                return

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the recording is over (source ended, duration reached, or failed)."""
        return self.done.wait(timeout)

    def run(self, until: threading.Event | None = None) -> None:
        """Start, record until done (or ``until`` is set), stop; raise what failed."""
        self.start()
        try:
            while not self.done.wait(0.1):
                if until is not None and until.is_set():
                    break
        finally:
            self.stop()
        self.raise_error()

    def raise_error(self) -> None:
        """Raise the error that ended the recording, if any (as a ZaudioError)."""
        error = self.error
        if error is None:
            return
        if isinstance(error, ZaudioError):
            raise error
        raise ZaudioError(f"source {self.source.description} failed: {error}") from error

    def stop(self) -> None:
        """Stop capture, flush what is buffered (bounded by ``flush``), disconnect. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self.sender.stopping.set()
        try:
            self.source.stop()
        finally:
            self.sender.stop()
            self.client.close()
            self.done.set()
        c = self.counters
        if self._captured == 0:
            return
        log.info(
            "stream %r: sent %d blocks (%d frames), dropped %d blocks (%d frames)",
            self.stream.name,
            c["sent"],
            c["frames"],
            c["dropped"],
            c["dropped_frames"],
        )

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- sink (the source's thread) ------------------------------------------

    def put(self, block: Block, t: float | None) -> None:
        """Take one captured block (called by the source, from its thread)."""
        if self._ended:
            return
        n = len(block)
        index = self._captured
        if self.max_frames is not None and index + n >= self.max_frames:
            block = block[: self.max_frames - index]
            n = len(block)
            self._ended = True
        if self._t0 is None:
            self._t0 = t if t is not None else clock.now() - n / self.rate
            self.publisher.t0 = self._t0  # before the first block reaches the sender
        self._captured = index + n
        seq = self._blocks
        self._blocks = seq + 1
        item = (seq, index, block)
        if self.sender.inline:
            self.sender.publish(item)
            self.sender.flush_inline()
            if self._ended:
                self.source.stop()  # we are its thread: it returns after this block
                self.done.set()
            return
        if self.source.live:
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                self._overflows += 1
                self._overflow_frames += n
        else:
            while not self.sender.stopping.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
        if self._ended:
            self.end()

    def end(self, error: BaseException | None = None) -> None:
        """The source is exhausted or failed: finish after sending what is buffered."""
        self._ended = True
        if error is not None and self.error is None:
            self.error = error
        try:
            self._queue.put_nowait(END)
        except queue.Full:
            pass  # the sender sees _ended once the queue drains
        self.done.set()

    def _registration(self) -> dict[str, Any]:
        return self.publisher.registration()

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.done.set()
