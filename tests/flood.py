"""A hostile-but-authorised peer for the flood test: ``python -m tests.flood CONTROL SECONDS``.

Opens ``--connections`` DEALER sockets to the control channel (speaking REQ's
envelope) and, on each, keeps ``--window`` requests in flight without waiting
for their replies: register (with many streams) / disconnect churn, ``list``,
heartbeats for ids it got, and junk. Runs for SECONDS, then prints one JSON
line: what it sent, the replies it got, and how many were ``rate_limited``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from typing import Any

import zmq


def _request(n: int, ids: list[str]) -> dict[str, Any]:
    kind = n % 8
    if kind in (0, 1):
        streams = [
            {"name": f"f{os.getpid()}-{n}-{i}", "rate": 8000, "channels": 1} for i in range(32)
        ]
        return {"op": "register", "role": "recorder", "name": f"flood{n}", "host": "flood",
                "pid": os.getpid(), "streams": streams}  # fmt: skip
    if kind in (2, 3) and ids:
        return {"op": "disconnect", "id": ids.pop()}
    if kind == 4:
        return {"op": "list"}
    if kind == 5 and ids:
        return {"op": "heartbeat", "id": ids[-1], "stats": {"sent": n}}
    if kind == 6:
        return {"op": "explode"}
    return {"op": "time"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("control")
    parser.add_argument("seconds", type=float)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--window", type=int, default=200)
    args = parser.parse_args()
    ctx = zmq.Context()
    socks = []
    for _ in range(args.connections):
        s = ctx.socket(zmq.DEALER)
        s.linger = 0
        s.sndhwm = s.rcvhwm = 100_000
        s.connect(args.control)
        socks.append(s)
    poller = zmq.Poller()
    for s in socks:
        poller.register(s, zmq.POLLIN)
    counts = dict.fromkeys(("sent", "replies", "ok", "rate_limited", "refused"), 0)
    in_flight = dict.fromkeys(socks, 0)
    ids: list[str] = []
    numbers = itertools.count()
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        for s in socks:
            while in_flight[s] < args.window:
                s.send_multipart([b"", json.dumps(_request(next(numbers), ids)).encode()])
                in_flight[s] += 1
                counts["sent"] += 1
        for s, _ in poller.poll(10):
            while True:
                try:
                    frames = s.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                in_flight[s] -= 1
                counts["replies"] += 1
                raw = frames[-1]
                # big replies (list) are only classified: parsing them is not the point
                reply = (
                    json.loads(raw) if len(raw) < 4096 else {"ok": raw.startswith(b'{"ok":true')}
                )
                if reply.get("ok"):
                    counts["ok"] += 1
                    if "id" in reply and len(ids) < 10_000:
                        ids.append(reply["id"])
                elif reply.get("code") == "rate_limited":
                    counts["rate_limited"] += 1
                else:
                    counts["refused"] += 1
    for s in socks:
        s.close(0)
    ctx.term()
    print(json.dumps({**counts, "seconds": args.seconds}), flush=True)


if __name__ == "__main__":
    main()
