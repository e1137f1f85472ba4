"""A node written only from docs/protocol.md (plain pyzmq, json, struct; no zaudio code)
interoperates with `zaudio proxy` and `zaudio process`, both ways."""

from __future__ import annotations

import json
import os
import socket
import struct
import time
from typing import Any

import zmq

from tests.helpers import spawn, wait_node


class ForeignNode:
    """What another team would write from the contract alone."""

    def __init__(self, control: str) -> None:
        self.ctx = zmq.Context()
        self.req = self.ctx.socket(zmq.REQ)
        self.req.linger = 0
        self.req.connect(control)
        hello = self.call(op="hello")
        assert hello["protocol"] == 1
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.linger = 0
        self.pub.connect(hello["pub"])
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.linger = 0
        self.sub.connect(hello["sub"])

    def call(self, **msg: Any) -> dict[str, Any]:
        self.req.send(json.dumps(msg).encode())
        assert self.req.poll(2000), "no reply"
        reply: dict[str, Any] = json.loads(self.req.recv())
        assert reply["ok"] is True, reply
        return reply

    def audio(self, stream: str, seq: int, samples: list[float], t: float) -> list[bytes]:
        header = {
            "v": 1, "kind": "audio", "stream": stream, "src": "foreign-1", "seq": seq,
            "index": seq * len(samples), "t": t, "rate": 8000, "channels": 1,
            "frames": len(samples), "dtype": "float32", "x-extra": "ignored",
        }  # fmt: skip
        payload = struct.pack(f"<{len(samples)}f", *samples)
        return [f"audio/{stream}".encode() + b"\0", json.dumps(header).encode(), payload]

    def close(self) -> None:
        for s in (self.req, self.pub, self.sub):
            s.close(0)
        self.ctx.term()


def test_foreign_node_and_zaudio_processor_interoperate(proxy_proc: str) -> None:
    node = ForeignNode(proxy_proc)
    try:
        reg = node.call(
            op="register", role="recorder", name="foreign", host=socket.gethostname(),
            pid=os.getpid(), streams=[{"name": "ext", "rate": 8000, "channels": 1}],
        )  # fmt: skip
        node.sub.subscribe(b"result/rms\x00")
        node.sub.subscribe(b"audio/ext\x00")  # to see our own blocks: PUB is then connected
        with spawn("process", "tests.procs.interop:rms", "--name", "rms", "--topic", "ext",
                   "--proxy", proxy_proc):  # fmt: skip
            wait_node(proxy_proc, "rms", role="processor")
            # Plain PUB has ZeroMQ's slow-joiner window: resend block 0 until we see it
            # come back through the proxy (the usual handshake without zaudio's READY).
            deadline = time.monotonic() + 10
            seen_own = False
            while not seen_own and time.monotonic() < deadline:
                node.pub.send_multipart(node.audio("ext", 0, [0.5] * 80, time.time()))
                while node.sub.poll(50):
                    topic, header, _ = node.sub.recv_multipart()
                    seen_own |= topic == b"audio/ext\x00"
            assert seen_own
            for seq in range(1, 5):
                node.pub.send_multipart(node.audio("ext", seq, [0.25] * 80, time.time()))
            results: dict[int, dict[str, Any]] = {}
            deadline = time.monotonic() + 10
            while (len(results) < 4 or 1 not in results) and time.monotonic() < deadline:
                if not node.sub.poll(200):
                    continue
                topic, raw, payload = node.sub.recv_multipart()
                if topic != b"result/rms\x00":
                    continue
                header = json.loads(raw)
                assert payload == b""
                assert header["kind"] == "result" and header["processor"] == "rms"
                assert header["stream"] == "ext" and header["frames"] == 80
                results[header["index"] // 80] = header
            for seq in range(1, 5):
                assert abs(results[seq]["data"]["rms"] - 0.25) < 1e-6
            listing = node.call(op="list")
            names = {n["name"]: n for n in listing["nodes"]}
            assert names["rms"]["stats"].get("malformed", 0) == 0
            ext = {"name": "ext", "rate": 8000, "channels": 1, "node": reg["id"]}
            # extra fields (origin, via) are allowed: a foreign client reads the ones it knows
            assert any(ext.items() <= s.items() for s in listing["streams"]), listing["streams"]
        node.call(op="disconnect", id=reg["id"])
    finally:
        node.close()
