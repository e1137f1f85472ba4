"""A group's audio output re-sequenced (zaudio sequence): one ordered stream downstream.

Real processes: three members of group g negate a live ramp, each publishing its
share on a part of its own; ``zaudio sequence g`` publishes the parts as the one
stream ``g``; a downstream processor reads ``g`` and reports every block it got.
"""

from __future__ import annotations

import signal
import subprocess
import time
from typing import Any

import numpy as np

from tests.helpers import Listener, listing, run, spawn, wait_node, wait_until
from tests.test_groups import BLOCK, FRAMES, RATE, bus, settled
from zaudio.protocol import ResultHeader, decode
from zaudio.publisher import Publisher

__all__ = ["bus"]  # the fixture, shared with test_groups

MEMBER = ("process", "tests.procs.basic:negate", "--group", "g", "--topic", "mic")
DOWN = ("process", "tests.procs.basic:samples", "--name", "down", "--topic", "g")


def ramp(i: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Block ``i`` of the source: exact in float32, different in every block."""
    return (((i * FRAMES + np.arange(FRAMES)) % 4096) / 4096).astype(np.float32)[:, None]


def sequencer(control: str) -> dict[str, Any]:
    return next(n for n in listing(control)["nodes"] if n["role"] == "sequencer")


def test_group_audio_is_one_ordered_stream_downstream_across_a_sigkill(bus: str) -> None:
    quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL}
    with (
        spawn(*MEMBER, "--proxy", bus, **quiet),
        spawn(*MEMBER, "--proxy", bus, **quiet),
        spawn(*MEMBER, "--proxy", bus, **quiet) as victim,
        spawn("sequence", "g", "--reorder", "1s", "--proxy", bus, **quiet) as seq,
        spawn(*DOWN, "--proxy", bus, **quiet),
    ):
        settled(bus, 3)
        wait_node(bus, "g", role="sequencer")
        wait_node(bus, "down")
        got: list[dict[str, Any]] = []
        with (
            Listener(bus, "result/down") as listener,
            Publisher("mic", rate=RATE, channels=1, proxy=bus) as pub,
        ):

            def drain(timeout: float) -> bool:
                frames = listener.inlet.recv(timeout)
                if frames is None:
                    return False
                h, _ = decode(frames)
                assert isinstance(h, ResultHeader)
                got.append(h.data)
                return True

            n = int(5.0 / BLOCK)
            start = time.monotonic()
            for i in range(n):
                if i == int(2.0 / BLOCK):
                    victim.send_signal(signal.SIGKILL)
                pub.send(ramp(i))
                while (left := start + (i + 1) * BLOCK - time.monotonic()) > 0:
                    drain(left)
            # the tail: a hole waits out the 1 s bound, then what is behind it goes
            deadline = time.monotonic() + 20
            while (not got or got[-1]["index"] < (n - 1) * FRAMES) and time.monotonic() < deadline:
                drain(0.5)
            while drain(1.5):
                pass
        assert victim.wait(5) == -signal.SIGKILL
        # one stream: seq and index strictly increasing, seq jumping exactly over the skipped
        seqs, indices = [r["seq"] for r in got], [r["index"] for r in got]
        assert all(b > a for a, b in zip(seqs, seqs[1:], strict=False)), seqs
        assert all(
            s - seqs[0] == (i - indices[0]) // FRAMES for s, i in zip(seqs, indices, strict=True)
        ), got
        assert {r["stream"] for r in got} == {"g"}
        # exact content: every block is the negated ramp of its index, whole
        for r in got:
            assert r["frames"] == FRAMES
            assert r["samples"] == (-ramp(r["index"] // FRAMES)[:, 0]).tolist(), r["index"]
        blocks = [i // FRAMES for i in indices]
        assert (blocks[0], blocks[-1]) == (0, n - 1)
        missing = set(range(n)) - set(blocks)
        assert missing, "the killed member lost nothing: was it killed?"
        # every block missing downstream is counted: skipped by the sequencer, as a gap below
        wait_until(
            lambda: sequencer(bus)["stats"].get("skipped") == len(missing),
            10,
            f"the sequencer to report {len(missing)} skipped",
        )
        stats = sequencer(bus)["stats"]
        assert stats["skipped_frames"] == len(missing) * FRAMES
        assert stats["duplicates"] == 0 and stats["parts"] == 3
        assert stats["published"] == len(got)
        down = next(x for x in listing(bus)["nodes"] if x["name"] == "down")["stats"]
        assert down["lost_frames"] == len(missing) * FRAMES and down["rejected"] == 0
        r = run("ls", "--proxy", bus)
        assert r.returncode == 0, r.stderr
        table = r.stdout.split("SEQUENCER", 1)[1].splitlines()
        assert table[0].split() == [
            "PARTS", "RECEIVED", "RELEASED", "HELD", "SKIPPED", "LATE", "DUPLICATES",
        ]  # fmt: skip
        row = table[1].split()
        assert row[0] == "g" and row[5] == str(len(missing)), r.stdout
        assert seq.poll() is None


def test_sequence_rejects_a_bad_name_or_bound_in_one_line() -> None:
    for args, what in ((("bad name!",), "invalid stream name"), (("g", "--reorder", "x"), "x")):
        r = run("sequence", *args, "--proxy", "tcp://127.0.0.1:9")
        assert r.returncode == 2, r.stderr
        assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
        assert what in r.stderr, r.stderr


def test_pieces_out_of_order_late_twice_and_a_restart() -> None:
    """One part published by hand, out of order: the sequenced stream comes out in order,
    the missing piece skipped (seq jumps with it), the late and the twice dropped and
    counted; the input's index going back starts a new run of the stream."""
    from zaudio.proxy import Proxy
    from zaudio.sequencer import Sequencer

    START = 500  # blocks: 10 s in, so that index 0 again is a restart (RESTART)

    def block(k: int) -> np.ndarray[Any, np.dtype[np.float32]]:
        return np.full((FRAMES, 1), k / 64, np.float32)

    with Proxy(port=0) as proxy, Sequencer("out", reorder=0.3, proxy=proxy.control) as seq:
        wait_until(lambda: seq.ready, 10, "the sequencer to register")
        with (
            Listener(proxy.control, "out") as listener,
            Publisher("out/part/a1", rate=RATE, channels=1, proxy=proxy.control) as part,
        ):

            def send(*ks: int, base: int = START) -> None:
                for k in ks:
                    i = base + k
                    assert part.send(block(k), 100.0 + i * BLOCK, index=i * FRAMES)

            send(0, 2, 1, 3, 2, 5, 6)  # 2 twice, 4 missing
            first = listener.collect(6)
            send(4)  # after 5 went out: late
            send(7)
            wait_until(lambda: seq.stats()["late"] == 1, 10, "the late piece to be counted")
            send(0, 1, base=0)  # the source restarted: its index begins again
            after = listener.collect(3)
    assert seq.error is None
    got = [(h.seq, h.index // FRAMES, float(b[0, 0]) * 64) for h, b in first + after]
    assert got == [
        *((k, START + k, k) for k in (0, 1, 2, 3, 5, 6, 7)), (0, 0, 0), (1, 1, 1),
    ]  # fmt: skip
    srcs = [h.src for h, _ in first + after]
    assert len(set(srcs[:7])) == 1 and srcs[7] == srcs[8] != srcs[0]
    stats = seq.stats()
    assert (stats["skipped"], stats["skipped_frames"]) == (1, FRAMES)
    assert (stats["late"], stats["duplicates"], stats["restarts"]) == (1, 1, 1)
    assert stats["released"] == stats["published"] == 9 and stats["held"] == 0
