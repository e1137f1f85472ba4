"""A processor group across a proxy restart: whatever its members did not process is counted."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from typing import Any

from tests.helpers import Listener, answers, listing, run, spawn, wait_until
from tests.test_groups import (
    BLOCK,
    FN,
    FRAMES,
    HEARTBEAT,
    RATE,
    Results,
    check_once,
    publish,
    settled,
)
from zaudio.endpoints import free_ports
from zaudio.groups import BEAT
from zaudio.publisher import Publisher
from zaudio.share import LEASE


def counted(control: str) -> dict[str, int]:
    """The members' counters of what they did not process, summed over the group."""
    stats = [n["stats"] for n in listing(control)["nodes"] if n["name"] == "g"]
    keys = ("late", "unshared", "lost_in_handover", "gaps", "dropped", "rejected")
    out = {k: sum(int(s.get(k, 0)) for s in stats) for k in keys}
    out["lost"] = max(int(s.get("lost_frames", 0)) for s in stats) // FRAMES
    return out


def test_what_a_group_loses_around_a_proxy_restart_is_counted() -> None:
    port = str(free_ports(3))
    control = f"tcp://127.0.0.1:{port}"
    proxy = ("proxy", "--port", port, "--heartbeat", str(HEARTBEAT))
    quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL}
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(spawn(*proxy))
        wait_until(lambda: answers(control), 15, "the proxy to answer")
        for _ in range(3):
            stack.enter_context(
                spawn("process", FN, "--group", "g", "--topic", "mic", "--proxy", control, **quiet)
            )
        settled(control, 3)

        def restart() -> None:
            first.send_signal(signal.SIGKILL)
            first.wait(5)
            stack.enter_context(spawn(*proxy))

        with (
            Listener(control, "result/g") as listener,
            Publisher("mic", rate=RATE, channels=1, proxy=control) as pub,
        ):
            results = Results(listener)
            n = publish(pub, results, 8.0, {2.0: restart})
            settled(control, 3)
            results.settle()
        missing = check_once(results.seen, n)  # and never a block twice
        assert missing, "nothing was lost: did the proxy restart?"
        # every block no member processed is counted: in flight when the proxy died
        # (every member's gap), ours when our lease had lapsed (late), or stamped before
        # the new proxy's first epoch of the group (unshared, counted by its first member)
        wait_until(lambda: total(control) >= len(missing), 10, f"{len(missing)} counted")
        got = counted(control)
        assert got["unshared"] > 0, got
        assert got["dropped"] == got["rejected"] == got["lost_in_handover"] == 0, got
        # an upper bound: what a member still processed under its lease from the old
        # proxy (at most one lease of blocks stamped after the kill) is counted too
        # zaudio ls shows it, member by member
        r = run("ls", "--proxy", control)
        assert r.returncode == 0, r.stderr
        rows = [line.split() for line in r.stdout.split("GROUP", 1)[1].splitlines()[1:4]]
        assert sum(int(row[-1]) for row in rows) == got["unshared"], r.stdout
        over = total(control) - len(missing)
        assert over <= LEASE * BEAT * HEARTBEAT / BLOCK + 3, (len(missing), got)


def total(control: str) -> int:
    got = counted(control)
    return got["late"] + got["unshared"] + got["lost"]
