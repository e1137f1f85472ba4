"""The capture node: every message it subscribes to, as received, into a capture file.

It subscribes through :class:`~zaudio.connection.Connection` (hello → connect →
subscribe → confirm), registers as role ``capture`` (``zaudio ls`` shows its
counters), and writes each message's three frames and its receive time with a
:class:`~zaudio.capture.writer.CaptureWriter` the moment it arrives. Audio
headers go through a :class:`~zaudio.tracking.StreamTracker`, so the gaps it saw
are counted; the counters are stored in the file every second (``stats`` events)
and at the end (``end``), beside the node's clock offset to the proxy (``clock``
events), which the XDF export carries as clock offsets.

One thread: the one that calls :meth:`Capture.run` owns the sockets.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import zmq

from zaudio import clock
from zaudio._version import __version__
from zaudio.bus import recv_message
from zaudio.capture.writer import CaptureWriter, parse_rotate
from zaudio.client import NodeClient
from zaudio.connection import Connection
from zaudio.decoding import Decoder
from zaudio.errors import ConfigError
from zaudio.protocol import AudioHeader
from zaudio.security import Keys
from zaudio.tracking import CONFIRMED, StreamTracker

__all__ = ["STATS_INTERVAL", "Capture"]

log = logging.getLogger(__name__)

#: Seconds between the ``stats`` (and ``clock``) events written to the file.
STATS_INTERVAL: Final = 1.0
_NOBLOCK: Final = int(zmq.NOBLOCK)


class Capture:
    """Record the bus to a capture file.

    Parameters
    ----------
    out : str or Path
        The capture file (with ``rotate``: ``NAME.0000.EXT``, ``NAME.0001.EXT``, ...).
    topics : sequence of str, optional
        ``--topic`` patterns (default: every stream); a pattern starting with
        ``result/`` subscribes to those results instead of every processor's.
    results : bool
        Record results (False: none, whatever ``topics`` says).
    proxy : str, optional
        Control endpoint; ``ZAUDIO_PROXY`` or ``tcp://127.0.0.1:5555`` by default.
    keys : Keys, optional
        CurveZMQ client keys.
    duration : float, optional
        Stop after this many seconds.
    rotate : str, optional
        ``--rotate``: a size (``100MB``) or a duration (``10m``).
    name : str
        The node name in ``zaudio ls``.
    """

    def __init__(
        self,
        out: str | os.PathLike[str],
        *,
        topics: Sequence[str] | None = None,
        results: bool = True,
        proxy: str | None = None,
        keys: Keys | None = None,
        duration: float | None = None,
        rotate: str | None = None,
        name: str = "capture",
    ) -> None:
        patterns = list(topics or ["*"])
        if not results:
            patterns = [p for p in patterns if not p.startswith("result/")]
            if not patterns:
                raise ConfigError("--no-results with only result/ topics leaves nothing to capture")
        elif not any(p.startswith("result/") for p in patterns):
            patterns.append("result/")  # every processor's results
        self.out = Path(out)
        self.rotate = parse_rotate(rotate) if rotate is not None else (None, None)
        self.duration = duration
        self.keys = keys
        self.name = name
        self.conn = Connection(proxy, patterns, keys=keys)
        self.proxy = self.conn.control
        self.tracker = StreamTracker()
        self.counters = {"received": 0, "results": 0, "written": 0, "bytes": 0}
        self.decoder = Decoder(log, "recorded")
        self.writer: CaptureWriter | None = None

    def stats(self) -> dict[str, Any]:
        """Counters: ``received``, ``results``, ``written``, ``bytes``, ``gaps``,
        ``lost_frames``, ``rejected``, ``malformed``."""
        t = self.tracker
        writer = self.writer
        if writer is not None:
            self.counters["written"] = writer.messages
            self.counters["bytes"] = writer.bytes
        return {
            **self.counters,
            "gaps": t.gaps,
            "lost_frames": t.lost_frames,
            "rejected": t.rejected,
            "malformed": self.decoder.malformed,
        }

    def run(self, until: threading.Event | None = None) -> dict[str, Any]:
        """Capture until ``until`` is set or ``duration`` passed; return the counters.

        Raises
        ------
        CaptureError
            A write failed (disk full): the capture stopped, its file is valid.
        ConfigError
            ``out`` exists already or cannot be created.
        """
        stop = until or threading.Event()
        conn = self.conn
        conn.stop = stop
        writer = self.writer = CaptureWriter(
            self.out,
            start={
                "event": "start",
                "format": "zaudio-capture",
                "zaudio": __version__,
                "time": clock.now(),
                "host": socket.gethostname(),
                "proxy": self.proxy,
                "topics": conn.topics(),
            },
            rotate_bytes=self.rotate[0],
            rotate_seconds=self.rotate[1],
        )
        client: NodeClient | None = None
        clean = False
        try:
            if not conn.open(self.duration):  # a duration bounds the wait for the proxy too
                writer.close({"event": "end", **self.stats()})
                return self.stats()
            client = NodeClient(
                self.proxy,
                role="capture",
                name=self.name,
                registration=lambda: {"topics": conn.topics()},
                stats=self.stats,
                keys=self.keys,
            ).start()
            log.info("capturing %s from %s into %s", ", ".join(conn.topics()), self.proxy, self.out)
            self._loop(stop, writer, client)
            clean = True
        finally:
            self.tracker.close()
            if clean:
                writer.close({"event": "end", **self.stats()})
            else:
                writer.close_fd()
            if client is not None:
                client.close()
            conn.close(0)
        return self.stats()

    def _loop(self, stop: threading.Event, writer: CaptureWriter, client: NodeClient) -> None:
        sock = self.conn.sock
        end = None if self.duration is None else time.monotonic() + self.duration
        next_stats = time.monotonic() + STATS_INTERVAL
        offset: float | None = None
        while not stop.is_set():
            now = time.monotonic()
            if end is not None and now >= end:
                return
            if now >= next_stats:
                next_stats = now + STATS_INTERVAL
                if client.offset_known and client.offset != offset:
                    offset = client.offset
                    writer.event(
                        {"event": "clock", "time": clock.now(), "offset": offset, "rtt": client.rtt}
                    )
                writer.event({"event": "stats", "time": clock.now(), **self.stats()})
            wait = STATS_INTERVAL if end is None else min(STATS_INTERVAL, end - now)
            if not sock.poll(int(max(wait, 0.001) * 1000)):
                continue
            for _ in range(1000):  # bounded: the stats and the stop flag get their turn
                try:
                    frames = recv_message(sock, _NOBLOCK)
                except zmq.Again:
                    break
                self._record(writer, frames)

    def _record(self, writer: CaptureWriter, frames: list[Any]) -> None:
        received = clock.now()
        c = self.counters
        if len(frames) != 3:
            self.decoder.malformed += 1  # the format holds three frames: not recordable
            return
        topic, header, payload = frames
        writer.message(received, topic, header.buffer, payload.buffer)
        decoded = self.decoder(frames)
        if decoded is None:
            return
        h, block = decoded
        if type(h) is AudioHeader:
            c["received"] += 1
            if self.tracker.follow(h, block) == CONFIRMED:
                self.tracker.release()
        else:
            c["results"] += 1
