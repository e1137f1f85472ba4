"""The bench's measuring processor, shared by zaudio and the baseline.

``zaudio process zaudio.bench.probe:Probe -p out=FILE`` runs it in zaudio's real
runtime; the baseline subscriber (:mod:`zaudio.bench.baseline`) calls the very
same object from a plain SUB loop, so both sides pay the same measuring cost.

Per block it records the latency ``now - (info.t + info.frames / info.rate)``:
the time from the moment the block's last frame was due (captured) to the call,
and checks ``seq`` per stream. A background thread writes the counts to ``out``
every 0.1 s (atomically) so the runner can tell when a run is complete; when
the file ``out + ".req"`` appears, and on ``close()``, it writes the full summary
with every latency.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["Probe", "cpu_seconds", "paced", "percentiles"]


def paced(count: int, period: float) -> Iterator[int]:
    """Tick numbers 0 .. count-1, tick ``k`` at ``k + 1`` periods after the first call.

    The publishing loop of both sides of the paired bench (zaudio.bench.multipub and
    the baseline's publisher): the same ticks, slept to, never sent early; a late
    tick is given at once (the schedule does not slip).
    """
    start = time.monotonic()
    for k in range(count):
        delay = start + (k + 1) * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield k


def cpu_seconds(pid: int) -> float:
    """CPU seconds process ``pid`` has run so far, all threads, at ns resolution.

    ``/proc/PID/task/*/schedstat`` rather than ``stat`` (10 ms ticks: too coarse
    for a few hundred blocks of ~100 us each).
    """
    total = 0
    base = f"/proc/{pid}/task"
    for tid in os.listdir(base):
        try:
            with open(f"{base}/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50, p99 and max of ``values`` (None when empty)."""
    if not values:
        return {"p50": None, "p99": None, "max": None}
    v = sorted(values)
    n = len(v)

    def at(q: float) -> float:
        return v[min(n - 1, int(q * (n - 1) + 0.5))]

    return {"p50": at(0.5), "p99": at(0.99), "max": v[-1]}


class _Stream:
    __slots__ = ("first", "gaps", "last", "lat", "n", "next_seq", "src")

    def __init__(self, src: str, seq: int, now: float) -> None:
        self.src = src
        self.next_seq = seq
        self.n = 0
        self.gaps = 0
        self.first = now
        self.last = now
        self.lat: list[float] = []


class Probe:
    """Counts, seq checks and latencies per stream; a summary file for the runner.

    Parameters
    ----------
    out : str
        File the summary (JSON) is written to.
    interval : float
        Seconds between the periodic count dumps.
    """

    def __init__(self, out: str, interval: float = 0.1) -> None:
        self.out = out
        self.interval = interval
        self.streams: dict[str, _Stream] = {}
        self.total = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._dump_loop, name="probe-dump", daemon=True)
        self._thread.start()

    def __call__(self, block: Any, info: Any) -> None:
        now = time.time()
        st = self.streams.get(info.stream)
        if st is None or st.src != info.src:
            st = self.streams[info.stream] = _Stream(info.src, info.seq, now)
        if info.seq != st.next_seq:
            st.gaps += 1
        st.next_seq = info.seq + 1
        st.n += 1
        st.last = now
        st.lat.append(now - (info.t + info.frames / info.rate))
        self.total += 1

    def counts(self) -> dict[str, Any]:
        streams = {
            name: {"n": s.n, "gaps": s.gaps, "first": s.first, "last": s.last}
            for name, s in list(self.streams.items())
        }
        total = self.total
        cpu = time.process_time()
        return {"pid": os.getpid(), "total": total, "cpu": cpu, "streams": streams, "final": False}

    def summary(self) -> dict[str, Any]:
        out = self.counts()
        for name, s in list(self.streams.items()):
            lat = list(s.lat)
            out["streams"][name].update(percentiles(lat))
            out["streams"][name]["lat"] = lat
        out["final"] = True
        return out

    def _write(self, data: dict[str, Any]) -> None:
        tmp = f"{self.out}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, self.out)

    def _dump_loop(self) -> None:
        last = -1
        request = self.out + ".req"
        while not self._stop.wait(self.interval):
            if os.path.exists(request):
                # The runner asks for everything so far (latencies included).
                with self._lock:
                    self._write(self.summary())
                os.unlink(request)
                continue
            total = self.total
            if total != last:
                with self._lock:
                    if not self._stop.is_set():
                        self._write(self.counts())
                last = total

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._write(self.summary())
