"""What the monitor page shows: levels, spectra and results from the bus, and ``list``.

:class:`Meter` (pure numpy) turns one stream's blocks into a level and a spectrum
column a few times per second. :class:`Monitor` is a thread that owns a
:class:`~zaudio.connection.Connection` subscribed to every audio stream and every
result (hello → connect → subscribe → confirm, like every receiving node; opened
again after the proxy was away, as it may have moved), and a
:class:`~zaudio.client.Requester` asking the proxy for ``list`` every second (each
node gets ``what``, the summary ``zaudio ls`` shows too); it hands each update, a
JSON text, to ``emit`` (the server's fan-out to the open monitor pages). The data
path is never slowed by it: the proxy drops what a slow subscriber cannot take, and
this thread only decimates.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from zaudio.client import Requester
from zaudio.connection import Connection
from zaudio.decoding import Decoder
from zaudio.errors import ProxyError
from zaudio.listing import node_summary
from zaudio.protocol import AudioHeader, ResultHeader, encode_json
from zaudio.security import Keys

__all__ = ["BANDS", "Meter", "Monitor"]

log = logging.getLogger(__name__)

#: Spectrum bands per column (log-spaced frequencies).
BANDS = 64
FFT = 1024
FLOOR_DB = -100.0
#: Largest result ``data`` forwarded as is (JSON bytes); bigger ones are summarised.
MAX_RESULT = 2048
#: Seconds one attempt to open the data connection may take (the ``list`` updates wait).
OPEN_TIMEOUT = 2.0
#: A stream with no block for this long leaves the monitor.
STALE = 5.0


def _band_edges(rate: int, n_fft: int, bands: int) -> tuple[npt.NDArray[np.intp], list[float]]:
    """FFT bin edges of ``bands`` log-spaced bands from 40 Hz to ~Nyquist."""
    nyq = rate / 2
    hi = min(nyq, 20_000.0)
    edges_hz = np.geomspace(40.0, hi, bands + 1)
    bins = np.round(edges_hz * n_fft / rate).astype(np.intp)
    bins = np.clip(bins, 1, n_fft // 2)
    for i in range(1, len(bins)):  # at least one bin per band
        bins[i] = max(bins[i], bins[i - 1] + 1)
    bins = np.minimum(bins, n_fft // 2 + 1)
    centers = [float(np.sqrt(a * b)) for a, b in zip(edges_hz[:-1], edges_hz[1:], strict=True)]
    return bins, centers


class Meter:
    """Levels and a spectrum column of one stream, from the blocks fed to it.

    Parameters
    ----------
    rate, channels : int
        The stream's format.
    """

    def __init__(self, rate: int, channels: int) -> None:
        self.rate = rate
        self.channels = channels
        self.n_fft = FFT if rate <= 96_000 else 4 * FFT
        self._ring = np.zeros(self.n_fft, np.float32)
        self._pos = 0
        self._window = np.hanning(self.n_fft).astype(np.float32)
        self._scale = 2.0 / float(self._window.sum())
        self._edges, self.centers = _band_edges(rate, self.n_fft, BANDS)
        self._sumsq = np.zeros(channels)
        self._peak = np.zeros(channels)
        self._frames = 0
        self.blocks = 0
        self.gaps = 0
        self.last = time.monotonic()
        self._src: str | None = None
        self._next_seq = 0

    def feed(self, header: AudioHeader, block: npt.NDArray[np.float32]) -> None:
        """Account for one block (any number of frames)."""
        if header.src != self._src:
            self._src = header.src
        elif header.seq != self._next_seq:
            self.gaps += 1
        self._next_seq = header.seq + 1
        self.blocks += 1
        self.last = time.monotonic()
        self._sumsq += np.einsum("ij,ij->j", block, block, dtype=np.float64)
        np.maximum(self._peak, np.abs(block).max(axis=0), out=self._peak)
        self._frames += block.shape[0]
        mono = block[:, 0] if self.channels == 1 else block.mean(axis=1)
        n = mono.shape[0]
        if n >= self.n_fft:
            self._ring[:] = mono[-self.n_fft :]
            self._pos = 0
            return
        end = self._pos + n
        if end <= self.n_fft:
            self._ring[self._pos : end] = mono
        else:
            first = self.n_fft - self._pos
            self._ring[self._pos :] = mono[:first]
            self._ring[: n - first] = mono[first:]
        self._pos = end % self.n_fft

    @property
    def fresh(self) -> bool:
        """True if blocks arrived since the last :meth:`snapshot`."""
        return self._frames > 0

    def snapshot(self) -> dict[str, Any]:
        """Levels since the last snapshot and the spectrum of the latest frames."""
        frames = max(self._frames, 1)
        rms = np.sqrt(self._sumsq / frames)
        peak = self._peak.copy()
        self._sumsq[:] = 0
        self._peak[:] = 0
        self._frames = 0
        x = np.roll(self._ring, -self._pos) * self._window
        mag = np.abs(np.fft.rfft(x)) * self._scale
        k = int(np.argmax(mag[1:])) + 1
        freq = float(k)
        if 1 <= k < len(mag) - 1:  # parabolic interpolation on log magnitude
            a, b, c = np.log(mag[k - 1 : k + 2] + 1e-12)
            denom = a - 2 * b + c
            if denom != 0:
                freq = k + 0.5 * float(a - c) / float(denom)
        bands = np.maximum.reduceat(mag[: self._edges[-1]], self._edges[:-1])
        db = 20 * np.log10(bands + 1e-12)
        spec = np.clip((db - FLOOR_DB) * (255.0 / -FLOOR_DB), 0, 255).astype(np.uint8)
        loud = float(rms.max()) if rms.size else 0.0
        return {
            "rate": self.rate,
            "channels": self.channels,
            "rms": [round(float(v), 5) for v in rms],
            "peak": [round(float(v), 5) for v in peak],
            "db": round(20 * np.log10(loud + 1e-12), 1) if loud > 0 else FLOOR_DB,
            "freq": round(freq * self.rate / self.n_fft, 1),
            "spec": spec.tolist(),
            "blocks": self.blocks,
            "gaps": self.gaps,
        }


def _result_entry(header: Any) -> dict[str, Any]:
    data = header.data
    raw = encode_json(data)
    if len(raw) > MAX_RESULT:
        data = {"truncated": f"{len(raw)} bytes of JSON"}
    return {
        "processor": header.processor,
        "stream": header.stream,
        "seq": header.seq,
        "index": header.index,
        "frames": header.frames,
        "t": header.t,
        "data": data,
    }


class Monitor:
    """A thread watching the bus for the monitor pages.

    Parameters
    ----------
    proxy : str
        Control endpoint.
    emit : callable
        Called (from this thread) with each update as a JSON text.
    keys : Keys, optional
        CurveZMQ client keys.
    fps : float
        Level/spectrum updates per second per stream.
    """

    def __init__(
        self,
        proxy: str | None,
        emit: Callable[[str], None],
        *,
        keys: Keys | None = None,
        fps: float = 15.0,
        list_every: float = 1.0,
    ) -> None:
        self.proxy = proxy
        self.emit = emit
        self.keys = keys
        self.period = 1.0 / fps
        self.list_every = list_every
        self.meters: dict[str, Meter] = {}
        self.decoder = Decoder(log)
        self.last_list: str | None = None
        self._linked = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Monitor:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="zaudio-web-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    @property
    def errors(self) -> int:
        """Messages that did not decode."""
        return self.decoder.malformed

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _list(self, req: Requester, conn: Connection) -> None:
        try:
            if not self._linked or conn.lost():  # (again) after an outage: it may have moved
                self._linked = conn.open(timeout=OPEN_TIMEOUT)
            msg: dict[str, Any] = {"type": "list", **req.request({"op": "list"})}
            for node in msg.get("nodes") or []:
                if isinstance(node, dict):  # the page shows the same words as `zaudio ls`
                    node["what"] = node_summary(node)
        except ProxyError as exc:
            self._linked = False
            msg = {"type": "list", "ok": False, "error": str(exc)}
        text = encode_json(msg).decode()
        self.last_list = text
        self.emit(text)

    def _run(self) -> None:
        conn = Connection(self.proxy, ["*", "result/"], keys=self.keys, hwm=1000, stop=self._stop)
        inlet = conn.inlet
        req = Requester(conn.control, timeout=0.5, keys=self.keys)
        results: dict[str, dict[str, Any]] = {}
        next_tick = next_list = time.monotonic()
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_list:
                    self._list(req, conn)
                    next_list = time.monotonic() + self.list_every
                if now >= next_tick:
                    self._tick(results)
                    results = {}
                    next_tick = now + self.period
                wait = max(0.0, min(next_tick, next_list) - time.monotonic())
                if inlet.endpoint is None:
                    self._stop.wait(wait)
                    continue
                frames = inlet.recv(wait)
                while frames is not None:
                    self._handle(frames, results)
                    frames = inlet.recv(0)
        except Exception:  # pragma: no cover - a bug; say so, the pages show it stopped
            log.exception("monitor thread failed")
        finally:
            conn.close(0)
            req.close()

    def _handle(self, frames: list[Any], results: dict[str, dict[str, Any]]) -> None:
        decoded = self.decoder(frames)
        if decoded is None:
            return
        header, block = decoded
        if block is None or not isinstance(header, AudioHeader):
            if isinstance(header, ResultHeader):
                results[header.processor] = _result_entry(header)
            return
        meter = self.meters.get(header.stream)
        if meter is None or (meter.rate, meter.channels) != (header.rate, header.channels):
            meter = self.meters[header.stream] = Meter(header.rate, header.channels)
        meter.feed(header, block)

    def _tick(self, results: dict[str, dict[str, Any]]) -> None:
        now = time.monotonic()
        streams = {}
        for name, meter in list(self.meters.items()):
            if meter.fresh:
                streams[name] = meter.snapshot()
            elif now - meter.last > STALE:
                del self.meters[name]
        if streams:
            self.emit(encode_json({"type": "levels", "streams": streams}).decode())
        if results:
            self.emit(encode_json({"type": "results", "results": list(results.values())}).decode())
