"""The processor runtime: the lifecycle behind ``zaudio process`` and :class:`Processor`.

One processor, one process (or thread of yours). Each stage of its data path is
a module of its own::

    connection.py   hello -> connect -> subscribe -> confirm (Inlet SUB + Outlet XPUB)
    backfill.py     with since=: the proxy's history first, then live (the overlap dropped)
    overrun.py      the bounded queue, and the helper that drains the socket into it
                    only while one call of the function runs slow
    tracking.py     per stream: in order, gap, restart, or a stray block (held/rejected)
    expected.py     per stream: the next in-order header, predicted as bytes (the fast path)
    wire.py         that receive and match compiled (zaudio/_wire.c), when it is built
    adapt/          format adaptation (rate, channels, int16), decided once per stream
    windows.py      re-blocking into exact windows, fed by one call
    outputs.py      what the function returns: results and audio back on the bus

    delivery.py     the one path every block and window takes: receive (the worker
                    reads the socket itself while idle), decode, track, then the
                    call on the block or on each window cut from it

This module holds the lifecycle: connect, register, run, stop, close.

Blocks handed to the user are read-only views of the received ZeroMQ frame
(no copy); windows (``window=``) are copies cut by :class:`~zaudio.windows.Windower`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from zaudio.backfill import Backfill
from zaudio.background import Background
from zaudio.client import NodeClient
from zaudio.connection import Connection
from zaudio.delivery import DeliveryPath
from zaudio.failures import Failures, OnError
from zaudio.importer import Loaded
from zaudio.options import processor_options
from zaudio.outputs import Outputs
from zaudio.overrun import OverrunPolicy, OverrunQueue
from zaudio.security import Keys
from zaudio.sequencer import part_stream
from zaudio.share import Membership, group_spec
from zaudio.tracking import Info, StreamTracker

__all__ = ["Info", "Processor", "run_processor"]

log = logging.getLogger(__name__)

Overrun = OverrunPolicy


class Processor(Background, DeliveryPath):
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
    rate, channels, dtype, pick : optional
        Convert every block before the call (:mod:`zaudio.adapt`): resample to
        ``rate`` Hz, downmix to ``channels=1`` (mean) or select channels
        (``pick="0,2"``), ``dtype="int16"`` (rounded, clipped and counted). Windows
        are cut after the conversion. A stream listed at start that cannot be
        converted raises ConfigError; one that appears later is counted in
        ``unconvertible``. A class's ``input_format`` dict (``{"rate": 16000,
        "channels": 1}``) gives the defaults of ``rate``, ``channels`` and ``dtype``.
    group : str, optional
        Share the work with every processor of this group (zaudio.groups): each
        block, or window, is processed by one live member; results go to
        ``result/<group>``; ``name`` defaults to the group. Arrays go to the
        member's part ``<output>/part/<src>`` (:attr:`output`);
        ``zaudio sequence OUTPUT`` publishes the parts as one ordered stream.
    since : str or float, optional
        Start this long before live (``"2s"``): the proxy's history first (it must
        run with ``--history``; :mod:`zaudio.backfill`), every block in order with
        ``info.history = True``, then live, with no gap and no duplicate at the seam.
        A proxy that keeps none: the processor starts live and says so (one log
        line, ``history: "off"`` in its counters).

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
        rate: int | None = None,
        channels: int | None = None,
        dtype: str | None = None,
        pick: str | Iterable[int] | None = None,
        group: str | None = None,
        since: str | float | None = None,
    ) -> None:
        spec = group_spec(group, fn, params, window, hop) if group is not None else None
        o = self.options = processor_options(
            fn,
            topics=topics,
            name=name if name is not None else group,
            output=output,
            window=window,
            hop=hop,
            params=params,
            on_overrun=on_overrun,
            queue=queue,
            on_error=on_error,
            rate=rate,
            channels=channels,
            dtype=dtype,
            pick=pick,
            since=since,
        )
        self.loaded: Loaded = o.loaded
        self.name, self.output, self.topics = o.name, o.output, o.topics
        if group is not None:  # each member's arrays are a part; zaudio.sequencer orders them
            self.output = part_stream(o.output)
        self.window, self.hop, self._windows = o.window, o.hop, o.windows
        if group is not None and self._windows is not None:
            self._windows.align = True  # every member cuts the same windows
        #: the format conversion, or None (then blocks go through untouched)
        self.adapter = o.adapter
        self.keys = keys
        self.proxy = proxy
        self.group, self._group_spec = group, spec
        #: this processor's part of its group, once registered (None: not in a group)
        self.membership: Membership | None = None
        self.on_overrun, self.capacity, self.on_error = on_overrun, queue, on_error
        #: the history asked for first (``since=``), or None
        self.backfill = Backfill(o.since) if o.since is not None else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.tracker = StreamTracker()
        self.overrun = OverrunQueue(queue, on_overrun, self.tracker)
        self._publishes_audio = True  # False once the output name turned out taken
        self.failures = Failures(self.name, on_error, self.tracker.counts)
        self._init_delivery()
        self.client: NodeClient | None = None
        self.conn: Connection | None = None
        self.outputs: Outputs | None = None
        #: what ended a background run (:meth:`start`) with an error, if anything
        self.error: BaseException | None = None

    # -- counters ------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """The counters heartbeats carry (and ``zaudio ls`` shows).

        ``rejected`` counts blocks that disagreed with their stream's position
        (see :mod:`zaudio.tracking`); ``nonfinite`` the NaN or infinite samples
        received, per stream; ``result_nonfinite`` the NaN or infinite numbers in
        results, sent as null (:attr:`~zaudio.protocol.ResultStream.nonfinite`).
        ``streams`` breaks ``received``, ``processed``, ``dropped``, ``gaps``,
        ``lost_frames`` and ``failed`` down per input stream (at most
        :data:`~zaudio.bounds.MAX_STATS_STREAMS` of them, :mod:`zaudio.perstream`).
        """
        n = self.processed
        failed = self.failures.failed
        adapter, outputs = self.adapter, self.outputs
        return {
            "received": self.received,
            "processed": n,
            **self.overrun.stats(),  # dropped, queued
            **self.tracker.stats(),  # gaps, lost_frames, rejected, nonfinite
            "errors": failed + self.malformed,
            "failed": failed,
            "malformed": self.malformed,
            "ignored": self.ignored,
            "unconvertible": adapter.unconvertible if adapter else 0,
            "clipped": adapter.clipped if adapter else 0,
            # published, unsent, result_nonfinite
            **(outputs.stats() if outputs is not None else Outputs.NONE),
            "lag": self._lag(),
            "proc_time": self._proc_total / n if n else None,
            "rtf": self._proc_total / self._audio_total if self._audio_total else None,
            **(self.membership.stats() if self.membership is not None else {}),
            # history, history_blocks, history_overlapped (with since=)
            **(self.backfill.stats() if self.backfill is not None else {}),
            "streams": self.tracker.counts.breakdown(),
        }

    def _registration(self) -> dict[str, Any]:
        topics = self.conn.topics() if self.conn else []
        fields = {"topics": topics, "outputs": [self.output] if self._publishes_audio else []}
        return {**fields, "group": self._group_spec} if self._group_spec else fields

    # -- lifecycle -------------------------------------------------------------

    def _what(self) -> str:
        return f"processor {self.name!r}"

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
        client: NodeClient | None = None
        try:
            if not conn.open():
                return
            client = self.client = NodeClient(
                self.proxy,
                role="processor",
                name=self.name,
                registration=self._registration,
                stats=self.stats,
                keys=self.keys,
            ).start()
            if self.group is not None:
                hop = self.hop if self._windows is not None else None
                self.membership = Membership(client, self.group, hop)
            if not self._await_registration(client):
                return
            output = self.output if self._publishes_audio else None
            results = self.group or self.name
            self.outputs = Outputs(results, output, conn.outlet, client, self.failures)
            known = conn.matching_streams()
            if self.adapter is not None:
                self.adapter.check(known)
            if known:
                log.info(
                    "processor %r on %s",
                    self.name,
                    ", ".join(f"{s['name']} ({s['rate']} Hz, {s['channels']} ch)" for s in known),
                )
            else:
                log.info("processor %r waiting for streams matching %s", self.name, self.topics)
            if self.group is not None and output is not None:
                log.info(
                    "group %r: arrays go to %s; 'zaudio sequence %s' makes them one stream",
                    self.group,
                    output,
                    output.rpartition("/part/")[0],
                )
            if self.backfill is not None:  # the live subscription is confirmed: the seam holds
                self.backfill.fetch(conn.control, conn.prefixes, self.keys, self.name)
            self.overrun.start(conn.sock, self._accept, self._stop)
            if self.backfill is not None:
                self._replay(self.backfill, self.outputs)
            self._loop(conn.sock, self.outputs)
        finally:
            self._stop.set()
            self.overrun.join()
            self.tracker.close()
            self.failures.close(self.loaded.close)
            if self.outputs is not None:
                self.outputs.close()
            if client is not None:
                client.close()
            conn.close()

    def _await_registration(self, client: NodeClient) -> bool:
        while not self._stop.is_set():
            if client.registered.wait(0.05):
                return True
            refused = client.refused
            if refused is not None:
                if (
                    refused.code == "stream_taken"
                    and not self.options.explicit_output
                    and self._publishes_audio
                ):
                    # Another node already owns our default output name: run
                    # without it; arrays returned are then counted as unsent.
                    log.warning(
                        "output stream %r is taken; processor %r publishes no audio (%s)",
                        self.output,
                        self.name,
                        refused,
                    )
                    self._publishes_audio = False
                    client.refused = None
                    continue
                raise refused
        return False


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
