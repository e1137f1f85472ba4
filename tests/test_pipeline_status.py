"""The live view of ``zaudio up``: one line per node, redrawn in place on a terminal."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import time
from pathlib import Path

from tests.helpers import ROOT, ZAUDIO, env, stop
from zaudio.endpoints import free_ports

ROW = re.compile(
    r"^(?P<name>\S+)\s+(?P<kind>proxy|recorder|processor)\s+(?P<state>running|starting)\s+"
    r"(?P<pid>\d+)\s+\d+s\s+(?P<restarts>\d+)\s+(?P<sent>\S+)\s+(?P<received>\S+)\s+"
    r"(?P<dropped>\S+)\s+(?P<gaps>\S+)\s+(?P<errors>\S+)$"
)


def test_terminal_view_redraws_in_place(tmp_path: Path) -> None:
    port = free_ports(3)
    path = tmp_path / "p.toml"
    path.write_text(
        f'[proxy]\nport = {port}\n\n[recorder.tone]\nsource = "sine:440"\n\n'
        '[processor.lvl]\nfunction = "level"\ntopics = ["tone"]\n'
    )
    master, slave = pty.openpty()
    with (tmp_path / "err").open("w") as err:
        proc = subprocess.Popen(
            [*ZAUDIO, "up", str(path)], stdout=slave, stderr=err, env=env(), cwd=ROOT
        )
    os.close(slave)
    screen = b""
    try:
        deadline = time.monotonic() + 30
        # each redraw goes back over the 4-line block (header, proxy, tone, lvl) and clears
        while time.monotonic() < deadline:
            text = screen.decode(errors="replace")
            blocks = text.split("\x1b[4F\x1b[J")
            last = blocks[-1].splitlines()
            rows = [m for line in last if (m := ROW.match(line.strip()))]
            if len(blocks) >= 3 and len(rows) == 3 and all(r["state"] == "running" for r in rows):
                by_name = {r["name"]: r for r in rows}
                # counters arrive with each node's heartbeat: wait for both to show flow
                if by_name["lvl"]["received"] not in ("-", "0") and by_name["tone"]["sent"] not in (
                    "-",
                    "0",
                ):
                    break
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                screen += os.read(master, 65536)
        else:
            raise AssertionError(
                f"no settled view in 30 s:\n{screen.decode(errors='replace')[-2000:]}"
            )
        assert last[0].split() == [
            "NODE", "KIND", "STATE", "PID", "UP", "RESTARTS", "SENT", "RECEIVED", "DROPPED", "GAPS", "ERRORS",
        ]  # fmt: skip
        assert by_name["tone"]["kind"] == "recorder" and int(by_name["tone"]["sent"]) > 0
        assert by_name["tone"]["dropped"] == "0" and by_name["lvl"]["gaps"] == "0"
        assert all(r["restarts"] == "0" for r in rows)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, (tmp_path / "err").read_text()
    finally:
        stop(proc)
        os.close(master)
