"""Processors the runtime tests run (as ``tests.procs.basic:NAME``)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def samples(block: Any, info: Any) -> dict[str, Any]:
    """Every sample of channel 0, with the header fields: proves exact, ordered delivery."""
    return {
        "stream": info.stream,
        "seq": info.seq,
        "index": info.index,
        "frames": info.frames,
        "gap": info.gap,
        "samples": block[:, 0].tolist(),
        "writeable": bool(block.flags.writeable),
    }


def count(block: Any) -> int:
    """One argument: gets the block only."""
    return int(block.shape[0])


def negate(block: Any) -> Any:
    """Returns audio: published as a stream of its own."""
    return np.negative(block)


def boom(block: Any, info: Any) -> int:
    """Raises on every odd seq."""
    if info.seq % 2:
        raise RuntimeError(f"odd seq {info.seq}")
    return int(info.seq)


def slow(block: Any, info: Any) -> int:
    """Much slower than real time."""
    time.sleep(0.03)
    return int(info.seq)


class Lifecycle:
    """Writes its lifecycle to ``path``: init, setup once, close."""

    def __init__(self, path: str, gain: float = 1.0, label: str = "") -> None:
        self.path = path
        self.gain = gain
        self.calls = 0
        with open(path, "a") as f:
            f.write(f"init gain={gain!r} label={label!r}\n")

    def setup(self, info: Any) -> None:
        with open(self.path, "a") as f:
            f.write(f"setup {info.stream} seq={info.seq} calls={self.calls}\n")

    def process(self, block: Any, info: Any) -> dict[str, Any]:
        self.calls += 1
        return {"calls": self.calls, "peak": float(np.max(np.abs(block))) * self.gain}

    def close(self) -> None:
        with open(self.path, "a") as f:
            f.write(f"close calls={self.calls}\n")


def member(block: Any, info: Any, tag: str = "") -> dict[str, Any]:
    """A group member's result: which block (or window) it processed, and who it is."""
    import os

    return {"stream": info.stream, "seq": info.seq, "index": info.index, "pid": os.getpid()}
