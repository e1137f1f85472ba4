"""``print``: one readable line per block, for looking at a stream."""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from zaudio.errors import ConfigError
from zaudio.processors._dsp import Block, BlockInfo, power_dbfs

__all__ = ["Print"]


class Print:
    """Print one line per block to standard output, flushed at once.

    ::

        mic seq=41 index=19680 t=12:04:31.520 frames=480 ch=1 rms=-18.2 dBFS
        mic seq=43 index=20640 t=12:04:31.540 frames=480 ch=1 rms=-17.9 dBFS gap

    ``t`` is the block's time of day (UTC, milliseconds); ``rms`` is per channel,
    comma-separated; ``gap`` marks a block after lost frames, ``src=...`` a block from
    a new publisher run.

    Parameters
    ----------
    utc : bool, optional
        Show ``t`` as UTC time of day (the default) or, when false, as the raw Unix time
        in seconds.

    Returns (per block)
    -------------------
    None
        Nothing is published.

    Notes
    -----
    Like any Unix filter, it exits quietly when its reader goes away
    (``zaudio process print | head``): the first write to a closed pipe points
    standard output at ``/dev/null`` (so nothing is reported at exit) and raises
    ``SystemExit(0)``, which ends the processor (``Processor.run`` closes it as on
    any stop) and the command with status 0.
    """

    def __init__(self, utc: bool = True) -> None:
        if not isinstance(utc, bool):
            raise ConfigError(f"invalid -p utc={utc!r}: expected true or false")
        self.utc = utc

    def __call__(self, block: Block, info: BlockInfo) -> None:
        mean_square = np.einsum("ij,ij->j", block, block, dtype=np.float64) / block.shape[0]
        rms = ",".join(f"{power_dbfs(float(m)):.1f}" for m in mean_square)
        if self.utc:
            clock = time.strftime("%H:%M:%S", time.gmtime(info.t))
            when = f"{clock}.{int(info.t % 1.0 * 1000):03d}"
        else:
            when = f"{info.t:.3f}"
        line = (
            f"{info.stream} seq={info.seq} index={info.index} t={when} frames={info.frames} "
            f"ch={info.channels} rms={rms} dBFS"
        )
        if getattr(info, "restart", False):
            line += f" src={info.src}"
        if getattr(info, "gap", False):
            line += " gap"
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            _quiet_stdout()
            raise SystemExit(0) from None


def _quiet_stdout() -> None:
    """Point standard output at /dev/null: the final flush at exit must not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
