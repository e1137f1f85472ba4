"""``zaudio up``: a real pipeline, supervised, restarted, stopped with nothing left behind.

Issue #20's wall-clock numbers (every processor receiving within 5 s, a killed
processor restarted within 2 s) depend on how busy the machine is: they are measured
and printed by ``zaudio bench --scenario pipeline`` (zaudio/bench/pipeline.py). Here
the same behaviour is checked by its events, with generous bounded waits: the restart
in the supervisor's own terms (its back-off and poll interval, and the times it logged).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.helpers import ROOT, ZAUDIO, Listener, env, listing, proxy_process, run, stop, wait_until
from zaudio.endpoints import free_ports

#: The supervisor's poll interval (Supervisor.run's default): how late it sees an exit.
POLL = 0.05
#: ``zaudio up``'s log lines (cli/main.py): "2026-12-02 00:47:52,123 name LEVEL: message".
LOGGED = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+ \w+: "

PROCESSORS = ("gain", "level", "vad")
RECORDERS = ("tone", "voice")


@contextmanager
def up(path: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], Path, Path]]:
    """``zaudio up PATH`` as a real process, output to files; always stopped and reaped."""
    out, err = path.with_suffix(".out"), path.with_suffix(".err")
    with out.open("w") as fo, err.open("w") as fe:
        proc = subprocess.Popen(
            [*ZAUDIO, "up", str(path), *args], stdout=fo, stderr=fe, text=True, env=env(), cwd=ROOT
        )
        try:
            yield proc, out, err
        finally:
            stop(proc, signal.SIGTERM, 30)


def nodes(control: str) -> dict[str, dict[str, Any]]:
    try:
        return {n["name"]: n for n in listing(control)["nodes"]}
    except Exception:
        return {}


def _logged_at(stamp: str) -> float:
    """Seconds (local time) of a log line's asctime, with its milliseconds."""
    day, ms = stamp.split(",")
    return time.mktime(time.strptime(day, "%Y-%m-%d %H:%M:%S")) + int(ms) / 1000


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def example(tmp_path: Path) -> tuple[Path, str]:
    """The shipped example on free ports, in ``tmp_path``."""
    port = free_ports(3)
    for name in ("pipeline.toml", "gain.py"):
        shutil.copy(ROOT / "examples" / name, tmp_path / name)
    path = tmp_path / "pipeline.toml"
    text = path.read_text()
    assert "port = 5555 " in text
    path.write_text(text.replace("port = 5555 ", f"port = {port} "))
    return path, f"tcp://127.0.0.1:{port}"


def test_example_up_kill9_restart_and_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    path, control = example(tmp_path)
    t0 = time.monotonic()
    with up(path, "--status-every", "1s") as (proc, out, err):

        def receiving() -> dict[str, dict[str, Any]] | None:
            assert proc.poll() is None, err.read_text()
            found = nodes(control)
            ok = all(
                (found.get(p, {}).get("stats") or {}).get("received", 0) > 0 for p in PROCESSORS
            )
            return found if ok and all(r in found for r in RECORDERS) else None

        # polled every 0.1 s: the test's own requests compete for the same cores
        found = wait_until(receiving, 60, "every processor to receive", interval=0.1)
        took = time.monotonic() - t0
        print(f"every processor receiving {took:.2f} s after zaudio up started (the bench's")
        print("  pipeline scenario measures it against issue #20's 5 s)")
        proxy_pid = listing(control)["proxy"]["pid"]
        pids = {name: n["pid"] for name, n in found.items()}
        assert set(pids) == {*RECORDERS, *PROCESSORS}

        # kill -9 a processor: restarted (a new process, shown by the view at once),
        # then registered, counted, logged
        before = {p: found[p]["stats"] for p in ("gain", "level")}
        os.kill(pids["vad"], signal.SIGKILL)
        killed = time.monotonic()

        def respawned() -> list[str]:
            rows = re.findall(
                r"^vad\s+processor\s+(?:starting|running)\s+(\d+)", out.read_text(), re.M
            )
            return [pid for pid in rows if int(pid) != pids["vad"]]

        wait_until(respawned, 60, "vad to be restarted", interval=0.05)
        print(f"vad restarted {time.monotonic() - killed:.2f} s after kill -9")
        # within 2 s in the supervisor's terms: it sees the exit at its next poll and
        # starts the new process when the back-off it logged is over; and its own log
        # times say it did (exit seen -> restarted)
        log = err.read_text()
        exited = re.search(
            LOGGED + r"processor 'vad' exited \(signal SIGKILL after [\d.]+ s\).*; "
            r"restart 1 in ([\d.]+) s$",
            log,
            re.M,
        )
        restarted = re.search(
            LOGGED + r"processor 'vad' restarted \(pid \d+, restart 1\)$", log, re.M
        )
        assert exited and restarted, log
        backoff = float(exited[2])
        assert POLL + backoff < 2, f"a first failure waits {backoff} s before its restart"
        gap = _logged_at(restarted[1]) - _logged_at(exited[1])
        assert backoff <= gap + 0.001 < 2, (
            f"vad restarted {gap:.3f} s after the supervisor saw it exit"
        )

        def registered() -> dict[str, Any] | None:
            vad = nodes(control).get("vad")
            return vad if vad is not None and vad["pid"] != pids["vad"] else None

        vad = wait_until(registered, 30, "the new vad to register", interval=0.1)
        print(f"vad re-registered {time.monotonic() - killed:.2f} s after kill -9")
        assert vad["pid"] == int(respawned()[0])
        new_vad = vad["pid"]
        wait_until(
            lambda: re.search(
                rf"^vad\s+processor\s+running\s+{new_vad}\s+\S+\s+1\b", out.read_text(), re.M
            ),
            10,
            "the status view to count vad's restart",
        )
        log = err.read_text()
        assert "processor 'vad' exited (signal SIGKILL after" in log, log
        assert f"processor 'vad' restarted (pid {new_vad}, restart 1)" in log, log

        # the other processors lost nothing and kept receiving
        def moved_on() -> dict[str, dict[str, Any]] | None:
            now = nodes(control)
            ok = all(
                now[p]["stats"]["received"] > before[p]["received"] + 50 for p in ("gain", "level")
            )
            return now if ok else None

        now = wait_until(moved_on, 10, "gain and level to keep receiving")
        for name in ("gain", "level", "tone", "voice"):
            stats = now[name]["stats"]
            assert stats.get("dropped", 0) == 0 and stats.get("gaps", 0) == 0, (name, stats)

        # Ctrl-C: every node stops, in order, exit 0, no process left
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, err.read_text()
    log = err.read_text()
    order = [log.index(f"stopping {what}") for what in ("3 processor", "2 recorder", "the proxy")]
    assert order == sorted(order), log
    for pid in (*pids.values(), new_vad, proxy_pid):
        assert gone(pid), f"pid {pid} still there after zaudio up exited"


CRASHY = """\
[proxy]
port = {port}

[defaults]
backoff = "100ms"
backoff_max = "400ms"

[recorder.tone]
source = "sine:440"
restart = "always"
duration = "0.3s"

[recorder.once]
source = "noise"
duration = "0.3s"

[processor.crash]
function = "crash:fn"
topics = ["tone"]
on_error = "stop"

[processor.crash-no]
function = "crash:fn"
topics = ["tone"]
on_error = "stop"
restart = "no"
"""


def test_policies_and_backoff_bounds(tmp_path: Path) -> None:
    port = free_ports(3)
    (tmp_path / "crash.py").write_text("def fn(block):\n    raise RuntimeError('boom')\n")
    path = tmp_path / "crashy.toml"
    path.write_text(CRASHY.format(port=port))
    with up(path, "--no-status") as (proc, _, err):
        # on-failure with a failure every time: 0.1, 0.2, 0.4, then held at 0.4 s
        crash_exit = (
            r"processor 'crash' exited \(exit 1 after [\d.]+ s\).*; restart (\d+) in ([\d.]+) s"
        )
        wait_until(
            lambda: len(re.findall(crash_exit, err.read_text())) >= 4,
            60,
            "four restarts of crash",
        )
        log = err.read_text()
        delays = re.findall(crash_exit, log)
        assert [d for _, d in delays[:4]] == ["0.10", "0.20", "0.40", "0.40"], log
        assert [n for n, _ in delays[:4]] == ["1", "2", "3", "4"]
        assert "processor 'crash' restarted (pid" in log
        # "no": ended for good; "on-failure" after exit 0: ended; "always": restarted
        assert "processor 'crash-no' ended (exit 1 after" in log
        assert "processor 'crash-no' restarted" not in log
        assert "recorder 'once' ended (exit 0 after" in log
        assert "recorder 'once' restarted" not in log
        wait_until(
            lambda: "recorder 'tone' restarted (pid" in err.read_text(), 30, "tone to restart"
        )
        assert re.search(
            r"recorder 'tone' exited \(exit 0 after [\d.]+ s\); restart 1 in 0.10 s",
            err.read_text(),
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, err.read_text()


def test_a_killed_proxy_is_restarted_and_the_nodes_come_back(tmp_path: Path) -> None:
    port = free_ports(3)
    control = f"tcp://127.0.0.1:{port}"
    path = tmp_path / "p.toml"
    path.write_text(
        f'[proxy]\nport = {port}\n\n[recorder.tone]\nsource = "sine:440"\n\n'
        '[processor.lvl]\nfunction = "level"\ntopics = ["tone"]\n'
    )
    with up(path, "--no-status") as (proc, _, err):

        def registered() -> dict[str, Any] | None:
            assert proc.poll() is None, err.read_text()
            try:
                reply = listing(control)
            except Exception:
                return None
            found = {n["name"]: n for n in reply["nodes"]}
            receiving = (found.get("lvl", {}).get("stats") or {}).get("received", 0) > 0
            return reply if receiving and "tone" in found else None

        first = wait_until(registered, 30, "the nodes to register")
        os.kill(first["proxy"]["pid"], signal.SIGKILL)
        # a new proxy (same port), and the same two nodes registered and flowing on it
        again = wait_until(
            lambda: (
                (r := registered()) is not None and r["proxy"]["pid"] != first["proxy"]["pid"] and r
            ),
            30,
            "a new proxy with the nodes back",
        )
        assert {n["pid"] for n in again["nodes"]} == {n["pid"] for n in first["nodes"]}
        log = err.read_text()
        assert "proxy exited (signal SIGKILL after" in log, log
        assert f"proxy restarted (pid {again['proxy']['pid']}, restart 1)" in log, log
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, err.read_text()
    assert gone(again["proxy"]["pid"])


def test_nodes_get_the_files_environment_and_not_the_shells(tmp_path: Path) -> None:
    port = free_ports(3)
    control = f"tcp://127.0.0.1:{port}"
    (tmp_path / "envs.py").write_text(
        "import os\n\n"
        "def fn(block):\n"
        "    return {k: os.environ.get(k) for k in ('COMMON', 'OWN', 'ZAUDIO_RECORD_RATE')}\n"
    )
    path = tmp_path / "env.toml"
    path.write_text(
        f'[proxy]\nport = {port}\n\n[env]\nCOMMON = "all"\nOWN = "default"\n\n'
        '[recorder.tone]\nsource = "sine:440"\n\n'
        '[processor.envs]\nfunction = "envs:fn"\ntopics = ["tone"]\nenv = { OWN = 7 }\n'
    )
    # a ZAUDIO_* variable of the shell would change every recorder's rate: not passed on
    e = env(ZAUDIO_RECORD_RATE="8000")
    out, err = path.with_suffix(".out"), path.with_suffix(".err")
    with out.open("w") as fo, err.open("w") as fe:
        proc = subprocess.Popen(
            [*ZAUDIO, "up", str(path), "--no-status"], stdout=fo, stderr=fe, env=e, cwd=ROOT
        )
    try:
        wait_until(lambda: "envs" in nodes(control) or proc.poll() is not None, 30, "envs")
        assert proc.poll() is None, err.read_text()
        with Listener(control, "result/envs", "tone") as bus:
            results, rates = [], set()
            for header, _ in bus.collect(20, timeout=20):
                if getattr(header, "processor", None) == "envs":
                    results.append(header.data)
                else:
                    rates.add(header.rate)
        assert results and all(
            r == {"COMMON": "all", "OWN": "7", "ZAUDIO_RECORD_RATE": None} for r in results
        )
        assert rates == {48000}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, err.read_text()
    finally:
        stop(proc)


def test_an_existing_proxy_by_endpoint(tmp_path: Path) -> None:
    with proxy_process() as (control, proxy):
        path = tmp_path / "ext.toml"
        path.write_text(
            f'[proxy]\nendpoint = "{control}"\n\n[recorder.ext]\nsource = "noise"\n\n'
            '[processor.lvl]\nfunction = "level"\ntopics = ["ext"]\n'
        )
        with up(path, "--no-status") as (proc, _, err):

            def both() -> dict[str, dict[str, Any]] | None:
                assert proc.poll() is None, err.read_text()
                found = nodes(control)
                return found if (found.get("lvl", {}).get("stats") or {}).get("received") else None

            found = wait_until(both, 30, "the nodes on the existing proxy")
            proc.send_signal(signal.SIGINT)
            assert proc.wait(30) == 0, err.read_text()
        assert "stopping the proxy" not in err.read_text()
        assert proxy.poll() is None, "zaudio up stopped a proxy it did not start"
        for name in ("ext", "lvl"):
            assert gone(found[name]["pid"])


def test_a_supervisor_killed_outright_takes_its_nodes_along(tmp_path: Path) -> None:
    """SIGKILL gives ``zaudio up`` no chance to stop its nodes: each node asked Linux
    for a SIGTERM when its supervisor dies (zaudio._children.die_with_parent)."""
    with proxy_process() as (control, _proxy):
        path = tmp_path / "orphans.toml"
        path.write_text(
            f'[proxy]\nendpoint = "{control}"\n\n[recorder.orph]\nsource = "noise"\n\n'
            '[processor.olvl]\nfunction = "level"\ntopics = ["orph"]\n'
        )
        with up(path, "--no-status") as (proc, _, err):

            def both() -> dict[str, dict[str, Any]] | None:
                assert proc.poll() is None, err.read_text()
                found = nodes(control)
                return found if (found.get("olvl", {}).get("stats") or {}).get("received") else None

            found = wait_until(both, 30, "the nodes on the proxy")
            proc.kill()
            assert proc.wait(10) == -signal.SIGKILL
            for name in ("orph", "olvl"):
                pid = found[name]["pid"]
                wait_until(lambda pid=pid: gone(pid), 20, f"{name} to stop with it")


def test_a_proxy_that_cannot_start_is_one_line_exit_1(tmp_path: Path) -> None:
    with proxy_process() as (control, _):
        port = control.rpartition(":")[2]
        path = tmp_path / "taken.toml"
        path.write_text(f'[proxy]\nport = {port}\n\n[recorder.t]\nsource = "noise"\n')
        r = subprocess.run(
            [*ZAUDIO, "up", str(path), "--no-status"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env(),
            cwd=ROOT,
        )
    assert r.returncode == 1, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"Error: the proxy exited \(exit 1\) before answering: .*", last), r.stderr
    assert "Traceback" not in r.stderr


def test_replicas_run_as_members_of_one_group(tmp_path: Path) -> None:
    port = free_ports(3)
    control = f"tcp://127.0.0.1:{port}"
    path = tmp_path / "p.toml"
    path.write_text(
        f'[proxy]\nport = {port}\n\n[recorder.tone]\nsource = "sine:440"\n\n'
        '[processor.lvl]\nfunction = "level"\ntopics = ["tone"]\ngroup = "lvl"\nreplicas = 3\n'
    )
    with up(path, "--no-status") as (proc, _, err):

        def sharing() -> dict[str, Any] | None:
            assert proc.poll() is None, err.read_text()
            try:
                reply = listing(control)
            except Exception:
                return None
            members = [n for n in reply["nodes"] if n["name"] == "lvl"]
            groups = {g["name"]: g for g in reply["groups"]}
            if len(members) != 3 or len(groups.get("lvl", {}).get("members", [])) != 3:
                return None
            shares = [(m.get("stats") or {}).get("group", {}).get("share") for m in members]
            busy = all((m.get("stats") or {}).get("processed", 0) > 0 for m in members)
            return reply if busy and shares == ["1/3"] * 3 else None

        reply = wait_until(sharing, 40, "three replicas sharing group lvl")
        pids = {n["pid"] for n in reply["nodes"] if n["name"] == "lvl"}
        assert len(pids) == 3
        assert "(5 nodes)" in err.read_text()  # proxy, recorder and 3 members
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, err.read_text()
    assert all(gone(pid) for pid in pids)


def test_a_group_with_an_output_gets_its_sequencer(tmp_path: Path) -> None:
    port = free_ports(3)
    control = f"tcp://127.0.0.1:{port}"
    (tmp_path / "neg.py").write_text("def negate(block):\n    return -block\n")
    path = tmp_path / "p.toml"
    path.write_text(
        f'[proxy]\nport = {port}\n\n[recorder.tone]\nsource = "sine:440"\n\n'
        '[processor.dn]\nfunction = "neg.py:negate"\ntopics = ["tone"]\ngroup = "dn"\n'
        'replicas = 2\noutput = "dn-out"\n\n'
        '[processor.down]\nfunction = "level"\ntopics = ["dn-out"]\n'
    )
    check = run("check", str(path))
    assert check.returncode == 0, check.stderr
    assert "(replicas: dn x2), 1 sequencer(s)" in check.stdout, check.stdout
    with up(path, "--no-status") as (proc, _, err):

        def flowing() -> dict[str, Any] | None:
            assert proc.poll() is None, err.read_text()
            found = nodes(control)
            seq = found.get("dn-out", {})
            down = (found.get("down", {}).get("stats") or {}).get("received", 0)
            parts = (seq.get("stats") or {}).get("parts", 0)
            return found if seq.get("role") == "sequencer" and parts == 2 and down > 20 else None

        found = wait_until(flowing, 40, "the members' audio sequenced into dn-out, read by down")
        down = found["down"]["stats"]
        # one ordered stream: nothing out of order or twice (a skip would be a counted gap)
        assert down["rejected"] == 0, down
        assert found["dn-out"]["stats"]["duplicates"] == 0, found["dn-out"]
        assert "(6 nodes)" in err.read_text()  # proxy, recorder, 2 members, sequencer, down
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, err.read_text()
