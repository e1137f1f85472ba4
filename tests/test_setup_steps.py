"""The set-up's progress lines (scripts/_steps.sh): one line per step, the step's own
output only in its log unless it fails or outruns its bound, then in full."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.helpers import ROOT, env


def steps(script: str, logs: Path) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in bash with scripts/_steps.sh sourced, logs in ``logs``."""
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail; . scripts/_steps.sh; {script}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env(ZAUDIO_SETUP_LOGS=str(logs)),
    )


def test_a_step_is_one_line_with_its_duration_and_its_output_goes_to_the_log(
    tmp_path: Path,
) -> None:
    out = steps(
        "step 'noisy thing' 30 bash -c 'for i in $(seq 100); do echo pip says $i; done'; "
        "step 'quiet thing' 30 bash -c 'echo present >\"$STEP_NOTE\"'; "
        "skip 'done thing' 'already there'",
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 3, out.stderr
    assert re.fullmatch(r"set-up: noisy thing \.\.\. done in \d+\.\d s", lines[0])
    assert re.fullmatch(r"set-up: quiet thing \.\.\. present in \d+\.\d s", lines[1])
    assert lines[2] == "set-up: done thing ... already there"
    log = (tmp_path / "noisy-thing.log").read_text()
    assert log.splitlines()[-1] == "pip says 100"


def test_a_failing_step_shows_its_output_in_full_and_keeps_its_exit_code(
    tmp_path: Path,
) -> None:
    out = steps(
        "step 'broken thing' 30 bash -c 'for i in $(seq 300); do echo line $i; done; exit 3'; "
        "echo never",
        tmp_path,
    )
    assert out.returncode == 3
    assert "never" not in out.stdout
    err = out.stderr.splitlines()
    assert re.fullmatch(
        r"set-up: broken thing \.\.\. FAILED \(exit 3\) after \d+\.\d s; its output:", err[0]
    )
    assert err[1:301] == [f"line {i}" for i in range(1, 301)]  # all of it, not a tail
    assert err[301] == f"set-up: broken thing FAILED; the log above is {tmp_path}/broken-thing.log"


def test_a_step_past_its_bound_is_stopped_and_says_so(tmp_path: Path) -> None:
    out = steps("step 'endless thing' 1 bash -c 'echo started; exec sleep 30'", tmp_path)
    assert out.returncode == 124
    err = out.stderr.splitlines()
    assert re.fullmatch(
        r"set-up: endless thing \.\.\. TIMED OUT after 1\.\d s \(bound 1 s\); its output:", err[0]
    )
    assert err[1] == "started"


def test_demo_prints_only_set_up_lines_before_its_own(tmp_path: Path) -> None:
    """scripts/demo on this checkout's .venv: its set-up says one line per step
    (each skipped here), then the demo's own lines; no pip or setuptools output."""
    out = subprocess.run(
        ["bash", "scripts/demo", "--duration", "1", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        env=env(ZAUDIO_SETUP_LOGS=str(tmp_path / "logs")),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    setup = out.stderr.splitlines()
    assert setup and all(line.startswith("set-up: ") for line in setup), out.stderr
    assert out.stdout.startswith("zaudio demo: proxy on tcp://127.0.0.1:"), out.stdout
