"""scripts/soak, short: the table it prints, 0 drops, and nothing left running."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
from pathlib import Path

from tests.helpers import ROOT, env, stop, wait_until

NODES = ("proxy", "plain", "windowed", "gain", "chained", "slow", "recorder")
HEAD = re.compile(r"^\s+NODE\s+SENT\s+RECEIVED\s+PROCESSED\s+DROPS\s+GAPS\s+ERRORS\s+RSS KiB start")


def _endpoint(text: str) -> str | None:
    m = re.search(r"processes on (tcp://127\.0\.0\.1:(\d+))", text)
    return m.group(1) if m else None


def _running_with(endpoint: str) -> list[str]:
    """Processes whose command line names the soak's proxy (its port or endpoint)."""
    port = endpoint.rsplit(":", 1)[1]
    left = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                if endpoint in cmd or f"--port {port}" in cmd:
                    left.append(f"{proc.name}: {cmd[:120]}")
    return left


def test_soak_prints_the_table_with_no_drop_and_stops_everything() -> None:
    out = subprocess.run(
        ["bash", "scripts/soak", "15s", "--every", "5s"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        env=env(),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    samples = [
        line for line in lines if re.match(r"^\s+\d+ s\s+sent\s+\d+\s+drops 0\s+gaps 0", line)
    ]
    assert len(samples) >= 3, out.stdout  # 0, 5, 10, 15 s (a slow sample may merge two)
    at = next(i for i, line in enumerate(lines) if HEAD.match(line))
    rows = {line.split()[0]: line.split() for line in lines[at + 1 : at + 1 + len(NODES)]}
    assert set(rows) == set(NODES), out.stdout
    m = re.search(r"recorder sent (\d+) blocks", out.stdout)
    assert m, out.stdout
    sent = int(m.group(1))
    assert sent >= 1400  # 15 s of 10 ms blocks, and more while it started
    for name in ("plain", "windowed", "gain", "chained", "slow"):
        _, _, received, _, drops, gaps, errors, *_ = rows[name]
        assert (int(received), drops, gaps, errors) == (sent, "0", "0", "0"), rows[name]
    assert rows["recorder"][1] == str(sent) and rows["recorder"][4] == "0"
    for name in NODES:  # RSS at the start, halfway and at the end, and the growth
        start, half, end = (int(v) for v in rows[name][7:10])
        assert min(start, half, end) > 0 and rows[name][11].endswith("%")
    assert lines[-1] == "soak: OK: 0 drops, 0 gaps, 0 errors"
    endpoint = _endpoint(out.stdout)
    assert endpoint, out.stdout
    assert _running_with(endpoint) == []


def test_soak_stopped_by_sigterm_stops_what_it_started(tmp_path: Path) -> None:
    log = tmp_path / "soak.log"
    with log.open("w") as f:
        proc = subprocess.Popen(
            ["bash", "scripts/soak", "5m"], cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env()
        )
        try:
            # started: the first sample line is out
            wait_until(lambda: re.search(r"^\s+0 s\s+sent", log.read_text(), re.M), 60, "a sample")
            endpoint = _endpoint(log.read_text())
            assert endpoint and _running_with(endpoint)
        finally:
            code = stop(proc, signal.SIGTERM, timeout=60)
    assert code == 130, log.read_text()
    assert "interrupted; everything it started is stopped" in log.read_text()
    assert _running_with(endpoint) == []
