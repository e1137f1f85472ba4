"""``zaudio bench --quick`` as a smoke test: it runs, prints the table, writes every figure.

No timing assertions: the numbers depend on the machine and its load.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run

FIGURES = {
    "codec_header_us",
    "codec_message_us",
    "adapt_cpu_pct",
    "adapt_latency_ms",
    "adapt_snr_db",
    "adapt_alias_db",
    "backfill_ms",
    "backfill_fetch_ms",
    "silero_rtf",
    "startup_help_ms",
    "startup_process_help_ms",
    "startup_process_ms",
    "latency_p50_ms",
    "latency_p99_ms",
    "cpu_per_block_us",
    "capacity_blocks_s",
    "capacity_publisher_blocks_s",
    "fan_in_streams",
    "fan_out_1_p99_ms",
    "fan_out_4_p99_ms",
    "fan_out_16_p99_ms",
}


@pytest.mark.timeout(150)
def test_bench_quick(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = run("bench", "--quick", "--json", str(out), timeout=140)
    assert proc.returncode == 0, proc.stderr
    assert "| figure" in proc.stdout and "| ratio" in proc.stdout.replace(" ratio ", "| ratio")
    data = json.loads(out.read_text())
    figures = {f["key"]: f for f in data["figures"]}
    assert set(figures) == FIGURES
    for key, f in figures.items():
        # every figure was measured on both sides (a value, not a gap in the table)
        assert f["zaudio_median"] is not None, key
        assert f["baseline_median"] is not None, key
        assert f["label"] in proc.stdout
    assert data["run"]["quick"] is True


def test_bench_bad_scenario() -> None:
    proc = run("bench", "--scenario", "nope")
    assert proc.returncode == 2
    assert "nope" in proc.stderr
