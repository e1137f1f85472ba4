"""Stopping child processes the way every zaudio tool that starts them must.

A tool that starts zaudio nodes (``zaudio up``, ``zaudio demo``) stops them in order
with :func:`stop_process`. So that a tool killed outright (SIGKILL, an OOM kill) leaves
no node behind either, it puts :func:`parent_env` in each child's environment; the
child's entry point calls :func:`die_with_parent`, which asks Linux for a SIGTERM when
that parent dies (``PR_SET_PDEATHSIG``), and stops at once if it already has.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from typing import Any

__all__ = ["PARENT_ENV", "die_with_parent", "parent_env", "stop_process"]

#: The environment variable naming the pid of the zaudio tool that started a node.
PARENT_ENV = "ZAUDIO_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def parent_env() -> dict[str, str]:
    """The environment entry that ties a child to this process (see the module docstring)."""
    return {PARENT_ENV: str(os.getpid())}


def die_with_parent() -> None:
    """In a node a zaudio tool started: SIGTERM when that tool dies (Linux; elsewhere a
    no-op). The child's own SIGTERM handling then stops it as ``stop_process`` would."""
    parent = os.environ.pop(PARENT_ENV, None)
    if parent is None or not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if str(os.getppid()) != parent:  # it died before the prctl: no signal will come
        os.kill(os.getpid(), signal.SIGTERM)


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
