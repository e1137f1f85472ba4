"""``zaudio bench``: run the scenarios, interleaved with the baseline, print the table."""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any

from zaudio.bench import adapt, backfill, groups, micro, paired, pipeline, scenarios
from zaudio.bench.figures import Figure, table
from zaudio.bench.harness import Bench

__all__ = ["OPT_IN", "SCENARIOS", "run"]

SCENARIOS = ("codec", "adapt", "backfill", "startup", "latency", "capacity", "fan-in", "fan-out")
#: Scenarios run only when named (``--scenario groups``): 3 minutes, 1.5 cores' worth of
#: waits; ``pipeline`` (``zaudio up``'s start-up and restart, zaudio.bench.pipeline).
OPT_IN = ("groups", "pipeline")


def _load() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def run(
    *,
    quick: bool = False,
    only: list[str] | None = None,
    json_path: str | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the bench; returns (and with ``json_path`` writes) every figure.

    ``latency`` includes the processor's CPU per block (measured in the same runs).
    """
    chosen = [s for s in SCENARIOS if not only or s in only]
    chosen += [s for s in OPT_IN if only and s in only]
    cfg = scenarios.Config(quick=quick)
    figures: list[Figure] = []
    started = time.time()
    info: dict[str, Any] = {
        "quick": quick,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
        "load_before": _load(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    say(f"zaudio bench{' --quick' if quick else ''}: {', '.join(chosen)} (load {_load()})")
    if "codec" in chosen:
        say("codec ...")
        figures += micro.codec(quick)
    if "adapt" in chosen:
        say("adapt ...")
        figures += adapt.adapt(quick)
    if "backfill" in chosen:
        say("backfill ...")
        figures += backfill.backfill(quick)
    if "groups" in chosen:
        say("groups ...")
        figures += groups.groups(quick, say)
    if "pipeline" in chosen:
        say("pipeline ...")
        figures += pipeline.pipeline(quick)
    layout = [s for s in chosen if s not in ("codec", "adapt", "backfill", *OPT_IN)]
    if layout:
        bench = Bench()
        try:
            for name in layout:
                say(f"{name} ...")
                t0 = time.monotonic()
                if name == "startup":
                    figures += micro.startup(bench, quick)
                else:
                    fn = getattr(paired if name == "latency" else scenarios, name.replace("-", "_"))
                    figures += fn(bench, cfg, say)
                say(f"{name}: {time.monotonic() - t0:.1f} s")
        finally:
            bench.close()
            shutil.rmtree(bench.dir, ignore_errors=True)
    info["seconds"] = round(time.time() - started, 1)
    info["load_after"] = _load()
    text = table(figures)
    say("")
    say(text)
    say(
        f"\n{info['seconds']} s; load average before {info['load_before']}, after {info['load_after']}"
    )
    result = {"run": info, "table": text, "figures": [f.as_dict() for f in figures]}
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=1)
    return result
