"""Stopping child processes the way every zaudio tool that starts them must."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from typing import Any

__all__ = ["stop_process"]


def stop_process(
    proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 10.0
) -> int:
    """Send ``sig``, wait up to ``timeout`` s, then SIGKILL; always reap. Returns the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode
