"""The recorder's sender thread: captured blocks → :class:`~zaudio.publisher.Publisher` → bus.

A :class:`Sender` owns the capture queue's consuming end and the Publisher (its
outlet is used by this thread only). Blocks arrive one of two ways:

- a source with a thread of its own (a device's callback, stdin) puts them in
  the bounded capture queue (:attr:`Sender.queue`); the sender thread takes them;
- a pull source that never waits on I/O (a signal, a file) runs *in* the sender
  thread (:meth:`Sender.run_source`): each block is published from the source's
  own call, no queue and no thread hand-off per block.

Either way a source that is not live (``--fast``, a file, stdin) waits while the
Publisher's buffer is full, and a live one moves on (the Publisher drops the
oldest, counted). At the end, :meth:`Sender.final_flush` gives the bus ``flush``
seconds to take what is held.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable

import zmq

from zaudio.client import NodeClient
from zaudio.errors import ZaudioError
from zaudio.publisher import Publisher
from zaudio.sources import Block, Sink, Source, ThreadSource

__all__ = ["END", "Sender"]

log = logging.getLogger(__name__)

END = None  # capture-queue sentinel: the source is exhausted
Item = tuple[int, int, Block]  # seq, index, block as captured


class Sender:
    """Publishes what the source captured, from the thread it starts.

    Parameters
    ----------
    source : Source
        The recorder's source.
    client : NodeClient
        The recorder's node client (its refusal ends the recording).
    publisher : Publisher
        The stream's publisher (used by the sender thread only, from :meth:`start` on).
    flush : float
        Seconds :meth:`final_flush` waits for the bus.
    fail : callable
        Ends the recording with an error.
    """

    def __init__(
        self,
        source: Source,
        client: NodeClient,
        publisher: Publisher,
        flush: float,
        fail: Callable[[BaseException], None],
    ) -> None:
        self.source = source
        self.client = client
        self.publisher = publisher
        self.flush = flush
        self.fail = fail
        # The capture queue only has to absorb the sender's scheduling jitter.
        self.queue: queue.Queue[Item | None] = queue.Queue(
            max(16, math.ceil(source.rate / source.block))
        )
        #: the source runs in the sender thread (see the module's docstring)
        self.inline = isinstance(source, ThreadSource) and not source.blocking_io
        self.capture = threading.Event()  # inline: start the source
        self.finish = threading.Event()  # leave the loop, flush, close
        self.stopping = threading.Event()  # stop() was called
        self._was_ready = False
        self._thread: threading.Thread | None = None

    def start(self, sink: Sink) -> None:
        self._thread = threading.Thread(
            target=self._loop, args=(sink,), name="zaudio-sender", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Finish (after flushing, bounded) and wait for the thread."""
        self.finish.set()
        try:
            self.queue.put_nowait(END)  # wake the sender now
        except queue.Full:
            pass
        if self._thread is not None:
            self._thread.join(self.flush + 5)

    def publish(self, item: Item) -> None:
        """Hand one captured block to the Publisher (sender thread)."""
        seq, index, block = item
        pub = self.publisher
        s = pub.stream
        if seq != s.seq:  # blocks the capture queue had no room for: a gap, not renumbered
            pub.skip(index - s.index, seq - s.seq)
        pub.send(block)

    def flush_inline(self) -> None:
        """Send what is held, from the source's (= sender's) thread, never for long.

        A live source moves on at once (the Publisher's buffer is bounded); a
        source that is not live waits here while the buffer is full.
        """
        pub = self.publisher
        sock = pub.outlet.sock
        while True:
            if self.client.refused is not None:
                self.fail(self.client.refused)
                self.source.stop()
                return
            if self._ready() and pub.held and not pub.flush():
                if pub.live:
                    return
                sock.poll(5, zmq.POLLOUT)
                continue
            if pub.live or not pub.full or self.stopping.is_set():
                return
            sock.poll(10)

    def _take(self, timeout: float) -> None:
        """Publish captured blocks, waiting up to ``timeout`` for one."""
        q = self.queue
        pub = self.publisher
        try:
            item = q.get(timeout=timeout) if timeout > 0 else q.get_nowait()
            while True:
                if item is not END:
                    self.publish(item)
                if not pub.live and pub.full:
                    return  # the source waits until the bus takes some
                item = q.get_nowait()
        except queue.Empty:
            return

    def _ready(self) -> bool:
        """Is the bus taking our stream? Logs each change."""
        ready = self.publisher.ready()
        if ready != self._was_ready:
            self._was_ready = ready
            pub = self.publisher
            if ready:
                log.info("publishing stream %r via %s", pub.stream.name, self.client.control)
            else:
                log.warning(
                    "bus not ready (proxy %s down?): buffering up to %g s of stream %r",
                    self.client.control,
                    pub.buffer_frames / pub.stream.rate,
                    pub.stream.name,
                )
        return ready

    def _loop(self, sink: Sink) -> None:
        pub = self.publisher
        sock = pub.outlet.sock
        try:
            if self.inline:
                while not self.capture.wait(0.1):
                    if self.finish.is_set():
                        break
                if not self.finish.is_set():
                    assert isinstance(self.source, ThreadSource)
                    self.source.run(sink)
            while not self.finish.is_set() and not self.inline:
                if self.client.refused is not None:
                    self.fail(self.client.refused)
                    break
                if not pub.live and pub.full:
                    sock.poll(10)
                else:
                    self._take(0.02 if pub.held else 0.1)
                if self._ready() and pub.held and not pub.flush():
                    sock.poll(5, zmq.POLLOUT)
            self.final_flush()
        except Exception as exc:  # a bug or a socket failure: end the recording, say why
            log.exception("recorder sender failed")
            self.fail(exc)
        finally:
            pub.close(0)

    def final_flush(self) -> None:
        """Give the bus up to ``flush`` seconds for what is held; count what is left."""
        pub = self.publisher
        deadline = time.monotonic() + self.flush
        while True:
            self._take(0)
            if not pub.held or self.client.refused is not None:
                break
            if pub.flush():
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                break
            pub.outlet.sock.poll(int(min(left, 0.02) * 1000) + 1)
        if pub.held:
            lost, frames = pub.discard()
            what = (
                f"stream {pub.stream.name!r}: {lost} buffered blocks "
                f"({frames} frames) not sent "
                f"(the bus at {self.client.control} was not ready within {self.flush:g} s)"
            )
            if self.source.live:
                log.warning("%s", what)
            else:  # a source that could have waited lost audio: the recording failed
                self.fail(ZaudioError(what))
