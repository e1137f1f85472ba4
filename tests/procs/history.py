"""Processors the history tests run (as ``tests.procs.history:NAME``)."""

from __future__ import annotations

from typing import Any


def position(block: Any, info: Any) -> dict[str, Any]:
    """Where each block is, and whether it came from the proxy's history."""
    return {
        "src": info.src,
        "seq": info.seq,
        "index": info.index,
        "frames": info.frames,
        "history": info.history,
        "gap": info.gap,
    }
