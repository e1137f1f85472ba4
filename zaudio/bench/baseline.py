"""The baseline: plain pyzmq doing the bench's work, with nothing of zaudio's on the path.

Three roles, each its own process (``python -m zaudio.bench.baseline ROLE ...``)::

    pub  : N XPUB sockets (one per stream) --> proxy: zmq.proxy(XSUB, XPUB) in C --> sub: one SUB

Messages have zaudio's three-frame shape and sizes (topic, a header padded to
zaudio's header length, float32 payload); the header is a packed
``(seq, t)``, the cheapest thing a hand-written app could do. ``t`` is the time
the block's first frame was due on the sample clock, as a recorder stamps it,
and the subscriber hands each block to the same :class:`~zaudio.bench.probe.Probe`
zaudio's processor runs, so both sides measure the same thing.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import struct
import sys
import threading
import time
from typing import Any

import numpy as np
import zmq

from zaudio.bench.probe import Probe, paced

HWM = 10_000  # as zaudio's proxy and Inlet
HEADER = struct.Struct("<Qd")
#: Length of a zaudio audio header for a 10 ms block (the baseline pads to it).
HEADER_LEN = 170
_ECHO = b"\xff\xfebench/echo/"


class Info:
    """What the probe reads from a block: zaudio's header field names."""

    __slots__ = ("frames", "rate", "seq", "src", "stream", "t")

    def __init__(self, stream: str, src: str, seq: int, t: float, frames: int, rate: int) -> None:
        self.stream = stream
        self.src = src
        self.seq = seq
        self.t = t
        self.frames = frames
        self.rate = rate


def _stop_event() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def proxy(args: argparse.Namespace) -> None:
    ctx: zmq.Context[Any] = zmq.Context()
    xsub = ctx.socket(zmq.XSUB)
    xsub.linger = 0
    xsub.rcvhwm = HWM
    xsub.bind(f"tcp://127.0.0.1:{args.pub_port}")
    xpub = ctx.socket(zmq.XPUB)
    xpub.linger = 0
    xpub.sndhwm = HWM
    xpub.bind(f"tcp://127.0.0.1:{args.sub_port}")

    def forward() -> None:
        try:
            zmq.proxy(xsub, xpub)
        except zmq.ContextTerminated:
            pass
        finally:
            xsub.close(0)
            xpub.close(0)

    thread = threading.Thread(target=forward, daemon=True)
    thread.start()
    stop = _stop_event()
    print("ready", flush=True)
    stop.wait()
    ctx.term()
    thread.join(2)


def _confirm(ctx: zmq.Context[Any], sub: zmq.Socket[Any], pub_ep: str, timeout: float) -> bool:
    """Prove the SUB's subscriptions reached the proxy (an echo topic seen on an XPUB)."""
    probe = ctx.socket(zmq.XPUB)
    probe.linger = 0
    probe.connect(pub_ep)
    token = _ECHO + secrets.token_hex(8).encode()
    sub.subscribe(token)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if probe.poll(50) and probe.recv() == b"\x01" + token:
                return True
        return False
    finally:
        sub.unsubscribe(token)
        probe.close(0)


def sub(args: argparse.Namespace) -> None:
    ctx: zmq.Context[Any] = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.linger = 0
    sock.rcvhwm = HWM
    sock.rcvtimeo = 100
    sock.connect(args.connect)
    for topic in args.topic:
        if topic == "*" or topic.endswith("/"):
            sock.subscribe(b"audio/" + topic.rstrip("*").encode())
        else:
            sock.subscribe(f"audio/{topic}\0".encode())
    if not _confirm(ctx, sock, args.pub, 10.0):
        sys.exit("baseline sub: subscription not confirmed")
    stop = _stop_event()
    probe = Probe(args.out)
    print("ready", flush=True)
    unpack = HEADER.unpack_from
    names: dict[bytes, str] = {}
    if args.zaudio:
        # Diagnostic: a plain SUB loop decoding zaudio's messages (zaudio.protocol).
        from zaudio.protocol import decode

        while not stop.is_set():
            try:
                frames = sock.recv_multipart(copy=False)
            except zmq.Again:
                continue
            h, blk = decode(frames)
            probe(blk, h)
        probe.close()
        sock.close(0)
        ctx.term()
        return
    while not stop.is_set():
        try:
            topic, header, payload = sock.recv_multipart(copy=False)
        except zmq.Again:
            continue
        raw = topic.bytes
        name = names.get(raw)
        if name is None:
            name = names[raw] = raw[6:-1].decode()
        seq, t = unpack(header.buffer)
        block = np.frombuffer(payload.buffer, dtype="<f4").reshape(-1, args.channels)
        probe(block, Info(name, "", seq, t, block.shape[0], args.rate))
    probe.close()
    sock.close(0)
    ctx.term()


def pub(args: argparse.Namespace) -> None:
    """Publish ``count`` blocks on each of ``streams`` streams, paced at ``blocks`` per second."""
    ctx: zmq.Context[Any] = zmq.Context()
    socks = []
    names = [f"{args.stream}{i}" if args.streams > 1 else args.stream for i in range(args.streams)]
    for name in names:
        s = ctx.socket(zmq.XPUB)
        s.linger = 1000
        s.sndhwm = 1000
        s.setsockopt(zmq.XPUB_NODROP, 1)  # as zaudio's Outlet: never drop at the sender
        s.connect(args.connect)
        socks.append((s, f"audio/{name}\0".encode()))
    # Wait until the proxy forwarded our topic's subscription (the SUB is there).
    deadline = time.monotonic() + 10
    for s, topic in socks:
        while time.monotonic() < deadline:
            if s.poll(50) and topic.startswith(s.recv()[1:]):
                break
    block = (np.sin(np.arange(args.frames * args.channels)) * 0.5).astype("<f4")
    block = block.reshape(args.frames, args.channels)
    pad = b" " * (HEADER_LEN - HEADER.size)
    period = 1.0 / args.blocks
    wall0 = time.time()
    for k in paced(args.count, period):
        header = HEADER.pack(k, wall0 + k * period) + pad
        for s, topic in socks:
            s.send_multipart([topic, header, block], copy=False)
    for s, _ in socks:
        s.close(2000)
    ctx.term()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m zaudio.bench.baseline")
    roles = ap.add_subparsers(dest="role", required=True)
    p = roles.add_parser("proxy")
    p.add_argument("--pub-port", type=int, required=True)
    p.add_argument("--sub-port", type=int, required=True)
    p.set_defaults(fn=proxy)
    p = roles.add_parser("sub")
    p.add_argument("--connect", required=True, help="the proxy's XPUB endpoint")
    p.add_argument("--pub", required=True, help="the proxy's XSUB endpoint (to confirm)")
    p.add_argument("--topic", action="append", default=[])
    p.add_argument("--out", required=True)
    p.add_argument("--rate", type=int, default=48000)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--zaudio", action="store_true", help="decode zaudio messages (diagnostic)")
    p.set_defaults(fn=sub)
    p = roles.add_parser("pub")
    p.add_argument("--connect", required=True, help="the proxy's XSUB endpoint")
    p.add_argument("--stream", default="base")
    p.add_argument("--streams", type=int, default=1)
    p.add_argument("--blocks", type=float, default=100.0, help="blocks per second per stream")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--frames", type=int, default=480)
    p.add_argument("--rate", type=int, default=48000)
    p.add_argument("--channels", type=int, default=1)
    p.set_defaults(fn=pub)
    args = ap.parse_args(argv)
    if args.role == "sub" and not args.topic:
        args.topic = ["*"]
    args.fn(args)


if __name__ == "__main__":
    main()
