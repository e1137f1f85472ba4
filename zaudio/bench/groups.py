"""The processor-group scenario: a function costing 1.5x real time, on 1, 2 and 3 members.

One process holds the proxy (heartbeat 1 s), a paced 16 kHz publisher (20 ms
blocks) and an ordered consumer (:func:`zaudio.results` with ``ordered=True``,
``reorder="2s"``); each member is a ``zaudio process --group`` process running
:func:`slow`, which takes 1.5x the block's duration (it waits, as a call to a
model on another device would, so the machine's cores are not what is measured).

Per member count: the p99 of the lag of each ordered result (its arrival minus
the end of its block; from the stream's 3rd second on, past the 2 s the
consumer holds its first result), the blocks the members dropped (their overrun queues),
duplicates and out-of-order results through ``ordered=True`` (``late`` plus
``duplicates``), and the results skipped. Targets: 1 member falls behind (drops
counted, > 0); 2 and 3 drop nothing; 3 keep p99 lag < 250 ms; no duplicate and
no out-of-order result anywhere. There is no baseline: no other bus shares one
live stream among replicas.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from zaudio._children import stop_process
from zaudio.bench.figures import Figure
from zaudio.client import request
from zaudio.ordered import results
from zaudio.proxy import Proxy
from zaudio.publisher import Publisher

__all__ = ["groups", "slow"]

RATE, FRAMES = 16000, 320
BLOCK = FRAMES / RATE
COST = 1.5
#: Seconds of stream whose results are left out of the lag: the consumer holds the
#: first result for the reorder bound (2 s), as a later one may come before it.
WARMUP = 3.0


def slow(block: Any, info: Any) -> int:
    """Costs 1.5x the block's duration (a wait), returns its index."""
    time.sleep(COST * info.frames / info.rate)
    return int(info.index)


def _members(control: str, n: int) -> list[subprocess.Popen[bytes]]:
    args = [sys.executable, "-m", "zaudio", "-q", "process", "zaudio.bench.groups:slow"]
    args += ["--group", "bench", "--topic", "mic", "--proxy", control]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZAUDIO_")}
    return [
        subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(n)
    ]


def _settled(control: str, n: int, timeout: float) -> bool:
    """Every member in the group's current epoch, and that epoch begun (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listing = request(control, {"op": "list"}, timeout=1.0)
        group = next((g for g in listing.get("groups", []) if g["name"] == "bench"), None)
        if group is not None and len(group["members"]) == n:
            epochs = [
                (node.get("stats") or {}).get("group", {}).get("epoch")
                for node in listing["nodes"]
                if node["name"] == "bench"
            ]
            if epochs.count(group["epoch"]) == n and listing["time"] >= group["start"]:
                return True
        time.sleep(0.1)  # polling the proxy's view, bounded by the deadline
    return False


def _round(n: int, seconds: float) -> dict[str, Any]:
    with Proxy(port=0, heartbeat=1.0) as proxy:
        members = _members(proxy.control, n)
        try:
            if not _settled(proxy.control, n, 30):
                raise RuntimeError(f"{n} group members did not settle within 30 s")
            lags: list[float] = []
            stats: dict[str, Any] = {}
            it = results("bench", ordered=True, reorder="2s", proxy=proxy.control, timeout=4.0,
                         stats=stats)  # fmt: skip
            ready = threading.Event()

            def consume() -> None:
                ready.set()
                for r in it:
                    if r.index >= WARMUP * RATE:
                        lags.append(time.time() - (r.t + r.frames / RATE))

            consumer = threading.Thread(target=consume, name="bench-consumer")
            consumer.start()
            ready.wait(5)
            blocks = int(seconds / BLOCK)
            with Publisher("mic", rate=RATE, channels=1, proxy=proxy.control) as pub:
                block = np.zeros((FRAMES, 1), np.float32)
                start = time.monotonic()
                for i in range(blocks):
                    left = start + (i + 1) * BLOCK - time.monotonic()
                    if left > 0:
                        time.sleep(left)  # a live source: each block leaves at its end
                    pub.send(block)
            listing = request(proxy.control, {"op": "list"}, timeout=1.0)
            consumer.join(seconds + 30)
            dropped = sum(
                int((node.get("stats") or {}).get("dropped", 0))
                for node in listing["nodes"]
                if node["name"] == "bench"
            )
        finally:
            for m in members:
                stop_process(m, timeout=10)
    lags.sort()
    p99 = lags[min(len(lags) - 1, int(0.99 * len(lags)))] * 1000 if lags else None
    return {
        "p99": p99,
        "dropped": dropped,
        "disordered": stats.get("late", 0) + stats.get("duplicates", 0),
        "skipped": stats.get("skipped", 0),
        "results": stats.get("released", 0),
        "blocks": blocks,
    }


def groups(quick: bool, say: Callable[[str], None] = print) -> list[Figure]:
    """The figures of 1, 2 and 3 members (60 s each; 8 s with ``quick``)."""
    seconds = 8.0 if quick else 60.0
    figures = []
    for n in (1, 2, 3):
        r = _round(n, seconds)
        say(
            f"groups: {n} member(s): {r['results']} results of {r['blocks']} blocks, "
            f"{r['dropped']} dropped, {r['skipped']} skipped, p99 lag {r['p99']} ms"
        )
        lag = Figure(f"group_{n}_p99_ms", f"group of {n}, 1.5x RT: p99 lag", "ms", "lower",
                     250.0 if n == 3 else None, absolute=True)  # fmt: skip
        drops = Figure(f"group_{n}_dropped", f"group of {n}, 1.5x RT: blocks dropped", "blocks",
                       "higher" if n == 1 else "lower", 1.0 if n == 1 else 0.0, absolute=True)  # fmt: skip
        disorder = Figure(f"group_{n}_disordered", f"group of {n}: duplicate/out-of-order",
                          "results", "lower", 0.0, absolute=True)  # fmt: skip
        if r["p99"] is not None:
            lag.zaudio.append(r["p99"])
        drops.zaudio.append(r["dropped"])
        disorder.zaudio.append(r["disordered"])
        for f in (lag, drops, disorder):
            f.extra.update(r)
        figures += [lag, drops, disorder]
    return figures
