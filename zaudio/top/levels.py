"""What ``zaudio top`` hears itself: every audio stream's level and block rate.

A :class:`LevelTap` subscribes to every audio stream (``*``) through the same
:class:`~zaudio.runtime.Connection` processors use, in a thread of its own
that owns the socket, and keeps per-stream sums that :meth:`LevelTap.take`
hands over and resets once per refresh. It does not register with the proxy:
``top`` only watches.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq

from zaudio.decoding import Decoder
from zaudio.protocol import AudioHeader
from zaudio.security import Keys

__all__ = ["Heard", "LevelTap"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Heard:
    """One stream as heard since the last :meth:`LevelTap.take`."""

    blocks_per_s: float
    rms_dbfs: float | None  # None when no block arrived in the period
    peak: float | None
    last_block: float  # time.monotonic() of the latest block ever heard


@dataclass
class _Sums:
    blocks: int = 0
    squares: float = 0.0
    samples: int = 0
    peak: float = 0.0
    last: float = 0.0


def dbfs(mean_square: float) -> float:
    """RMS level in dB relative to full scale (a full-scale sine is about -3 dB)."""
    return 10 * math.log10(mean_square) if mean_square > 1e-20 else -200.0


class LevelTap:
    """Listen to every audio stream in a background thread; see the module docstring."""

    def __init__(self, proxy: str, *, keys: Keys | None = None) -> None:
        self.proxy = proxy
        self.keys = keys
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sums: dict[str, _Sums] = {}
        self._since = time.monotonic()
        self._thread: threading.Thread | None = None
        self._listening: float | None = None  # monotonic time the subscription was confirmed
        self.decoder = Decoder(log)

    @property
    def malformed(self) -> int:
        """Messages that did not decode."""
        return self.decoder.malformed

    def listening_for(self) -> float:
        """Seconds since the subscription to every stream was in effect (0 before)."""
        return 0.0 if self._listening is None else time.monotonic() - self._listening

    def start(self) -> LevelTap:
        self._thread = threading.Thread(target=self._run, name="zaudio-top-tap", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(3)
            self._thread = None

    def take(self) -> dict[str, Heard]:
        """Every stream heard so far, with its level and rate since the last call."""
        now = time.monotonic()
        with self._lock:
            period = max(now - self._since, 1e-3)
            self._since = now
            out = {}
            for name, s in self._sums.items():
                out[name] = Heard(
                    blocks_per_s=s.blocks / period,
                    rms_dbfs=dbfs(s.squares / s.samples) if s.samples else None,
                    peak=s.peak if s.samples else None,
                    last_block=s.last,
                )
                s.blocks = s.samples = 0
                s.squares = s.peak = 0.0
        return out

    def _run(self) -> None:
        from zaudio.connection import Connection

        conn = Connection(self.proxy, ["*"], keys=self.keys, stop=self._stop)
        try:
            if not conn.open():
                return
            self._listening = time.monotonic()
            sock = conn.sock
            while not self._stop.is_set():
                if not sock.poll(100):
                    continue
                while True:
                    try:
                        frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    self._hear(frames)
        except zmq.ContextTerminated:  # pragma: no cover - interpreter exit
            pass
        finally:
            conn.close(0)

    def _hear(self, frames: list[Any]) -> None:
        decoded = self.decoder(frames)
        if decoded is None:
            return
        h, block = decoded
        if type(h) is not AudioHeader or block is None:
            return
        squares = float(np.dot(block.ravel(), block.ravel()))
        peak = float(np.max(np.abs(block))) if block.size else 0.0
        with self._lock:
            s = self._sums.setdefault(h.stream, _Sums())
            s.blocks += 1
            s.squares += squares
            s.samples += block.size
            s.peak = max(s.peak, peak)
            s.last = time.monotonic()
