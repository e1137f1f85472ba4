"""A peer flooding the control channel does not make other nodes miss heartbeats or stall data.

Real processes on real sockets: a ``zaudio proxy``, a real-time ``zaudio record``
(100 blocks/s) and ``tests/flood.py``, which pipelines thousands of requests a
second on four connections (register/disconnect churn, ``list``, junk). Meanwhile
this test is a normal node: its heartbeats are timed, and every block of the
recorder's stream is received.

Stalls are counted in the node's own heartbeats, not in wall-clock seconds: the test
receives blocks and sends heartbeats in one loop, so a test process that the machine
does not schedule for a while sees neither (and is not taken for a stall), while data
that stops flowing as heartbeats go on shows as heartbeats between two blocks.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tests.helpers import (
    ROOT,
    Listener,
    answers,
    env,
    free_ports,
    listing,
    spawn,
    wait_node,
    wait_until,
)
from zaudio.client import Requester
from zaudio.protocol import AudioHeader, decode

HEARTBEAT = 0.5
FLOOD_SECONDS = 4.0


def test_control_flood_leaves_heartbeats_and_data_alone() -> None:
    port = free_ports(3)
    control = f"tcp://127.0.0.1:{port}"
    with spawn("proxy", "--port", str(port), "--heartbeat", str(HEARTBEAT)) as proxy:
        wait_until(lambda: answers(control) or proxy.poll() is not None, 15, "proxy")
        with spawn("record", "--source", "sine:440", "--stream", "mic", "--rate", "8000",
                   "--block", "80", "--proxy", control):  # fmt: skip
            recorder = wait_node(control, "mic")
            with Listener(control, "mic") as listener:
                listener.collect(5)  # flowing
                node = Requester(control, timeout=HEARTBEAT)
                me = node.request({"op": "register", "role": "probe", "name": "me",
                                   "host": "h", "pid": 1})["id"]  # fmt: skip
                flood = subprocess.Popen(
                    [sys.executable, "-m", "tests.flood", control, str(FLOOD_SECONDS)],
                    stdout=subprocess.PIPE,
                    text=True,
                    cwd=ROOT,
                    env=env(),
                )
                try:
                    rtts, seqs, gaps, stalls = _normal_node(node, me, listener, flood)
                    out, _ = flood.communicate(timeout=15)
                finally:
                    if flood.poll() is None:
                        flood.kill()
                        flood.wait(5)
                    node.close()
                summary = json.loads(out)
                after = listing(control, timeout=HEARTBEAT)
    print(f"flood {summary}; heartbeat rtt max {max(rtts) * 1e3:.1f} ms over {len(rtts)}; "
          f"{len(seqs)} blocks, largest gap {max(gaps) * 1e3:.0f} ms, "
          f"at most {max(stalls)} heartbeat(s) between two blocks")  # fmt: skip
    # the flood was one: thousands of requests a second, and the limit answered them
    assert summary["sent"] / FLOOD_SECONDS >= 2000, summary
    assert summary["rate_limited"] > 0 and summary["ok"] > 0, summary
    assert after["proxy"]["refused"]["rate_limited"] >= summary["rate_limited"]
    # every heartbeat of the normal node answered within its interval, all along
    assert len(rtts) >= FLOOD_SECONDS / (HEARTBEAT / 2) - 2, rtts
    assert max(rtts) < HEARTBEAT, sorted(rtts)[-5:]
    # the recorder was never dropped, nor the normal node
    ids = {n["id"] for n in after["nodes"]}
    assert recorder["id"] in ids and me in ids
    # data kept flowing: every block, and never a stall while the node's heartbeats went
    # on: at most one heartbeat (every HEARTBEAT / 2 s) between two blocks (10 ms apart)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "blocks were lost"
    assert len(seqs) >= FLOOD_SECONDS * 100 * 0.8
    assert max(stalls) <= 1, (max(stalls), f"largest gap {max(gaps):.3f} s")


def _normal_node(
    node: Requester, me: str, listener: Listener, flood: subprocess.Popen[str]
) -> tuple[list[float], list[int], list[float], list[int]]:
    """While the flooder runs: heartbeat every HEARTBEAT/2 s (timed) and receive every block.

    Returns the heartbeats' round trips, the blocks' seqs, the seconds and the
    heartbeats (``stalls``) between each block and the one before it.
    """
    rtts: list[float] = []
    seqs: list[int] = []
    gaps: list[float] = []
    stalls: list[int] = []
    beats = 0  # heartbeats answered since the last block
    last = time.monotonic()
    next_beat = last
    deadline = last + FLOOD_SECONDS + 10
    while flood.poll() is None and time.monotonic() < deadline:
        frames = listener.inlet.recv(0.02)
        now = time.monotonic()
        if frames is not None:
            header, _ = decode(frames)
            assert isinstance(header, AudioHeader)
            seqs.append(header.seq)
            gaps.append(now - last)
            stalls.append(beats)
            last, beats = now, 0
        if now >= next_beat:
            t0 = time.monotonic()
            node.request({"op": "heartbeat", "id": me, "stats": {"beats": len(rtts)}})
            rtts.append(time.monotonic() - t0)
            beats += 1
            next_beat = t0 + HEARTBEAT / 2
    return rtts, seqs, gaps, stalls
