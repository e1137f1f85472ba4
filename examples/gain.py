"""A user processor for examples/pipeline.toml: the block scaled by ``db`` decibels."""

from __future__ import annotations

from typing import Any

import numpy as np


def gain(block: Any, db: float = -6.0) -> Any:
    """Return the block ``db`` dB louder (negative: quieter), published as audio."""
    return (block * np.float32(10.0 ** (db / 20.0))).astype(np.float32)
