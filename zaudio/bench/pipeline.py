"""``zaudio bench --scenario pipeline``: how fast ``zaudio up`` brings a graph up and back.

Issue #20's two wall-clock numbers, measured on the shipped ``pipeline`` example (a
proxy, two recorders, three processors) run by a real ``zaudio up``, on free ports:

- from exec of ``zaudio up`` to every processor receiving (target 5 s);
- from ``kill -9`` of a processor to its new process registered at the proxy
  (target 2 s; the supervisor's back-off for a first failure is 0.25 s).

Wall-clock seconds depend on how busy the machine is, so they are a benchmark (this
module, which prints them) and not a test bound: ``tests/test_pipeline_up.py`` checks
the same behaviour by its events, with bounded waits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zaudio._children import stop_process
from zaudio.bench.figures import Figure
from zaudio.bench.micro import _zaudio
from zaudio.client import request
from zaudio.endpoints import free_ports
from zaudio.pipeline.examples import example

__all__ = ["pipeline"]

PROCESSORS = ("gain", "level", "vad")
#: Seconds any one step may take before the round is given up (and counted as missing).
BOUND = 60.0


def _nodes(control: str) -> dict[str, dict[str, Any]]:
    try:
        nodes = request(control, {"op": "list"}, timeout=1.0)["nodes"]
    except Exception:  # not up yet, or restarting: keep polling
        return {}
    return {str(n["name"]): n for n in nodes if isinstance(n, dict)}


def _until(pred: Callable[[], Any], bound: float = BOUND) -> Any:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.02)  # polling the proxy: the measured processes need the cores
    return None


def _round(folder: Path) -> tuple[float | None, float | None]:
    """One ``zaudio up``: (seconds to every processor receiving, kill -9 to re-registered)."""
    port = free_ports(3)
    control = f"tcp://127.0.0.1:{port}"
    src = example("pipeline")
    text = src.read_text().replace("port = 5555 ", f"port = {port} ")
    path = folder / "pipeline.toml"
    path.write_text(text)
    (folder / "gain.py").write_text((src.parent / "gain.py").read_text())
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [*_zaudio(), "up", str(path), "--no-status"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=folder,
    )
    try:

        def receiving() -> dict[str, dict[str, Any]] | None:
            found = _nodes(control)
            ok = all(
                (found.get(p, {}).get("stats") or {}).get("received", 0) > 0 for p in PROCESSORS
            )
            return found if ok else None

        found = _until(receiving)
        if found is None:
            return None, None
        up = time.monotonic() - t0
        old = int(found["vad"]["pid"])
        os.kill(old, signal.SIGKILL)
        killed = time.monotonic()
        back = _until(lambda: _nodes(control).get("vad", {}).get("pid") not in (None, old))
        return up, (time.monotonic() - killed) if back else None
    finally:
        stop_process(proc, 30)


def pipeline(quick: bool) -> list[Figure]:
    """Start-up and restart of the example pipeline, 1 round (quick) or 3."""
    upf = Figure(
        "pipeline_up_s",
        "zaudio up: exec to every processor receiving (5 nodes)",
        "s",
        "lower",
        5.0,
        absolute=True,
    )
    restartf = Figure(
        "pipeline_restart_s",
        "zaudio up: kill -9 of a processor to its new process registered",
        "s",
        "lower",
        2.0,
        absolute=True,
    )
    for _ in range(1 if quick else 3):
        with tempfile.TemporaryDirectory(prefix="zaudio-bench-up-") as d:
            up, restart = _round(Path(d))
        for fig, value in ((upf, up), (restartf, restart)):
            if value is None:
                fig.notes.append(f"a round gave up after {BOUND:g} s")
            else:
                fig.zaudio.append(value)
    return [upf, restartf]
