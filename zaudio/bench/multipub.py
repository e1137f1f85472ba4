"""Many zaudio streams from one process: N :class:`zaudio.Publisher` objects, paced together.

``python -m zaudio.bench.multipub --proxy EP --prefix fanin/z --streams N --count C``

The fan-in bench uses it instead of N ``zaudio record`` processes: a hundred
Python processes would measure the machine's two cores, not the bus. Each
Publisher is a full node (its own registration, heartbeats, XPUB with the READY
handshake); every 10 ms each sends one block stamped with its due time on the
sample clock, in the proxy's time base, as a recorder does. With ``--streams 1``
it is the one-thread Publisher variant of the latency and capacity scenarios.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from zaudio.bench.probe import paced
from zaudio.bus import Publisher


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m zaudio.bench.multipub")
    ap.add_argument("--proxy", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--streams", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--frames", type=int, default=480)
    ap.add_argument("--rate", type=int, default=48000)
    ap.add_argument("--blocks", type=float, default=None, help="blocks/s (default rate/frames)")
    args = ap.parse_args(argv)
    pubs = [
        Publisher(f"{args.prefix}{i}", rate=args.rate, channels=1, proxy=args.proxy, wait=10.0)
        for i in range(args.streams)
    ]
    try:
        for p in pubs:
            p.start()
        block = (np.sin(np.arange(args.frames)) * 0.5).astype("<f4").reshape(-1, 1)
        period = 1.0 / args.blocks if args.blocks else args.frames / args.rate
        wall0 = time.time()
        for k in paced(args.count, period):
            for p in pubs:
                p.send(block, wall0 + p.client.offset + k * period)
        dropped = sum(p.counters["dropped"] for p in pubs)
        print(f"sent {args.count} x {args.streams}, dropped {dropped}", flush=True)
    finally:
        for p in pubs:
            p.close()


if __name__ == "__main__":
    main()
