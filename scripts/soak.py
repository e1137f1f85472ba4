"""The soak behind ``scripts/soak [DURATION] [--every D]``: how the bus holds over time.

Starts, each as its own ``zaudio`` process on free loopback ports: a proxy, a
recorder (``speech``, 48 kHz, 10 ms blocks) and five processors on its stream:

- ``plain``: the ``level`` built-in on every block;
- ``windowed``: ``level`` on 1 s windows every 500 ms;
- ``gain`` then ``chained``: a function that returns each block at half gain, as
  a new stream, and ``level`` on that stream (a processor fed by a processor);
- ``slow``: a function that takes half of each block's duration (it keeps up).

Every ``--every`` (10 s) it samples the counters (``zaudio ls --json``) and every
process's RSS (/proc/PID/status), printing one line. At the end it stops the
recorder, reads how many blocks it sent (its own last log line), waits (bounded)
until every processor has received them all, takes a last sample, stops
everything, and prints a table: per node, blocks sent/received, processed, drops,
gaps, errors, and RSS at the start (first sample), halfway and at the end. Exit 0
when nothing was dropped, lost or skipped, 1 otherwise, 2 for bad arguments.

Bounded: the run, each wait and each stop have a limit; every process it starts is
stopped (SIGTERM, then SIGKILL) on the way out, also on Ctrl-C or SIGTERM, and, if
the soak itself is killed, by the kernel (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zaudio._children import stop_process
from zaudio.endpoints import free_ports
from zaudio.errors import ConfigError
from zaudio.units import parse_duration

STREAM = "soak"
FNS = '''
import time


def half(block, info):
    """The block at half gain: published as a new stream."""
    return block * 0.5


def slow(block, info):
    """Busy for half of the block's duration: slow, but it keeps up."""
    time.sleep(0.5 * info.frames / info.rate)
'''
# name -> arguments to `zaudio process`
PROCESSORS: dict[str, list[str]] = {
    "plain": ["level", "--topic", STREAM],
    "windowed": ["level", "--topic", STREAM, "--window", "1s", "--hop", "500ms"],
    "gain": ["soakfns.py:half", "--topic", STREAM, "--output", f"{STREAM}-half"],
    "chained": ["level", "--topic", f"{STREAM}-half"],
    "slow": ["soakfns.py:slow", "--topic", STREAM],
}
# the stream each processor reads, by who publishes it
UPSTREAM = {"plain": "recorder", "windowed": "recorder", "gain": "recorder",
            "chained": "gain", "slow": "recorder"}  # fmt: skip


def _die_with_parent() -> None:
    """In the child: SIGTERM when the soak dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Soak:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.control = ""

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.work / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "zaudio", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.work,
            preexec_fn=_die_with_parent,
        )
        log.close()
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.work / f"{name}.log").read_text(errors="replace")

    def ls(self) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, "-m", "zaudio", "ls", "--json", "--proxy", self.control],
            capture_output=True,
            text=True,
            timeout=20,
        )
        if out.returncode != 0:
            raise RuntimeError(f"zaudio ls failed: {out.stderr.strip()}")
        data: dict[str, Any] = json.loads(out.stdout)
        return data

    def stats(self) -> dict[str, dict[str, Any]]:
        """name -> stats of the nodes this soak started (the recorder as 'recorder')."""
        pids = {p.pid: name for name, p in self.procs.items()}
        found = {}
        for node in self.ls()["nodes"]:
            name = pids.get(node["pid"])
            if name:
                found[name] = node.get("stats") or {}
        return found

    def rss(self) -> dict[str, int]:
        """name -> resident set size in KiB, of every process still running."""
        sizes = {}
        for name, proc in self.procs.items():
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
            except OSError:
                continue
            m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
            if m and proc.poll() is None:
                sizes[name] = int(m.group(1))
        return sizes

    def check_alive(self, *stopped: str) -> None:
        for name, proc in self.procs.items():
            if name not in stopped and proc.poll() is not None:
                tail = "\n".join(self.log(name).splitlines()[-10:])
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):  # processors, recorder, then the proxy
            stop_process(self.procs[name], signal.SIGTERM, 10)


def wait_for(what: str, timeout: float, predicate: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.2)


def kib(size: int | None) -> str:
    return "-" if size is None else str(size)


def run(duration: float, every: float, work: Path) -> int:
    (work / "soakfns.py").write_text(FNS)
    soak = Soak(work)
    try:
        port = free_ports(3)
        soak.control = f"tcp://127.0.0.1:{port}"
        soak.start("proxy", "proxy", "--port", str(port))

        def proxy_answers() -> bool:
            soak.check_alive()
            try:
                soak.ls()
                return True
            except RuntimeError:
                return False

        wait_for("the proxy to answer", 20, proxy_answers)
        for name, args in PROCESSORS.items():
            soak.start(name, "process", *args, "--name", name, "--proxy", soak.control)

        def processors_registered() -> bool:
            soak.check_alive()
            return set(soak.stats()) == set(PROCESSORS)

        # A processor registers once its subscriptions are in effect: from then on it
        # receives every block the recorder publishes, from the first.
        wait_for("every processor to register", 30, processors_registered)
        soak.start("recorder", "record", "--source", "speech", "--stream", STREAM,
                   "--proxy", soak.control)  # fmt: skip

        def all_working() -> bool:
            soak.check_alive()
            s = soak.stats()
            return len(s) == len(soak.procs) - 1 and all(
                (s[n].get("sent") if n == "recorder" else s[n].get("received")) for n in s
            )

        wait_for("every node to register and count blocks", 30, all_working)
        print(f"soak: {len(soak.procs)} processes on {soak.control} for {duration:g} s, "
              f"sampled every {every:g} s; logs in {work}", flush=True)  # fmt: skip
        samples: list[tuple[float, dict[str, int], dict[str, dict[str, Any]]]] = []
        t0 = time.monotonic()
        while True:
            soak.check_alive()
            elapsed = time.monotonic() - t0
            stats, rss = soak.stats(), soak.rss()
            samples.append((elapsed, rss, stats))
            rec = stats.get("recorder", {})
            drops = sum(int(s.get("dropped", 0)) for s in stats.values())
            gaps = sum(int(s.get("gaps", 0)) for s in stats.values())
            print(f"  {elapsed:6.0f} s  sent {rec.get('sent', 0):>8}  drops {drops}  gaps {gaps}  "
                  "RSS KiB: " + " ".join(f"{n} {k}" for n, k in rss.items()),
                  flush=True)  # fmt: skip
            if elapsed >= duration:
                break
            time.sleep(min(every, max(0.0, duration - (time.monotonic() - t0))))

        # The end: the recorder's own count, then every processor must have it all.
        stop_process(soak.procs["recorder"], signal.SIGTERM, 15)
        m = re.search(
            r"sent (\d+) blocks \(\d+ frames\), dropped (\d+) blocks", soak.log("recorder")
        )
        if not m:
            raise RuntimeError("the recorder did not say what it sent:\n" + soak.log("recorder"))
        sent, rec_dropped = int(m.group(1)), int(m.group(2))

        def settled() -> dict[str, dict[str, Any]] | None:
            soak.check_alive("recorder")
            s = soak.stats()
            upstream = {"recorder": sent, "gain": int(s.get("gain", {}).get("published", -1))}
            ok = all(
                int(s.get(n, {}).get("received", -1)) >= upstream[UPSTREAM[n]] for n in PROCESSORS
            )
            return s if ok and upstream["gain"] == sent else None

        try:
            final = wait_for("every processor to receive every block", 30, settled)
        except RuntimeError:
            final = soak.stats()
        end_rss = soak.rss()
        end_rss["recorder"] = samples[-1][1].get("recorder", 0)  # it is stopped now
    finally:
        soak.stop_all()

    # The table
    start_rss, half_rss = samples[0][1], samples[len(samples) // 2][1]
    final["recorder"] = {"sent": sent, "dropped": rec_dropped}
    rows = []
    bad = 0
    for name in soak.procs:
        s = final.get(name, {})
        if name == "proxy":
            upstream_sent = None
        else:
            upstream_sent = sent if name == "recorder" else (
                sent if UPSTREAM[name] == "recorder" else int(final["gain"].get("published", 0)))  # fmt: skip
        received = s.get("received")
        lost = 0 if received is None or upstream_sent is None else upstream_sent - int(received)
        drops = int(s.get("dropped", 0)) + max(lost, 0)
        gaps = int(s.get("gaps", 0))
        bad += drops + gaps + int(s.get("errors", 0))
        a, z = start_rss.get(name), end_rss.get(name)
        growth = (f"{z - a:+d}", f"{100 * (z - a) / a:+.2f}%") if a and z else ("-", "-")
        rows.append((name, s.get("sent", s.get("published", "-")), received if received is not None else "-",
                     s.get("processed", "-"), drops if name != "proxy" else "-",
                     gaps if name not in ("proxy", "recorder") else "-", s.get("errors", "-"),
                     kib(a), kib(half_rss.get(name)), kib(z), *growth))  # fmt: skip
    head = ("NODE", "SENT", "RECEIVED", "PROCESSED", "DROPS", "GAPS", "ERRORS",
            "RSS KiB start", "half", "end", "growth KiB", "%")  # fmt: skip
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    print(f"\nsoak: {samples[-1][0]:.0f} s, {len(samples)} samples; "
          f"recorder sent {sent} blocks ({sent * 480 / 48000:.1f} s of audio)")  # fmt: skip
    for r in [head, *rows]:
        print("  " + "  ".join(str(v).rjust(w) for v, w in zip(r, widths, strict=True)))
    if bad:
        print(f"soak: FAILED: {bad} blocks dropped, lost, skipped or failed")
        return 1
    print("soak: OK: 0 drops, 0 gaps, 0 errors")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "duration", nargs="?", default="30m", help="how long (30s, 5m; default 30m)"
    )
    parser.add_argument("--every", default="10s", help="sampling interval (default 10s)")
    parser.add_argument("--keep", metavar="DIR", help="keep the logs in DIR")
    args = parser.parse_args(argv)
    try:
        duration = parse_duration(args.duration, "DURATION")
        every = parse_duration(args.every, "--every")
    except ConfigError as exc:
        print(f"scripts/soak: {exc}", file=sys.stderr)
        return 2
    if duration <= 0 or every <= 0:
        print("scripts/soak: DURATION and --every must be above 0", file=sys.stderr)
        return 2

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        if args.keep:
            Path(args.keep).mkdir(parents=True, exist_ok=True)
            return run(duration, every, Path(args.keep))
        with tempfile.TemporaryDirectory(prefix="zaudio-soak-") as work:
            return run(duration, every, Path(work))
    except KeyboardInterrupt:
        print("soak: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"soak: FAILED: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
