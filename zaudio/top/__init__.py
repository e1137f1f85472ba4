"""``zaudio top``: a live terminal dashboard of the bus, refreshed every second.

::

    proxy --list (REQ, once a refresh)--> Model (rates between heartbeats) --> view (rich)
    proxy XPUB --every audio stream--> LevelTap (level, blocks/s heard) --^

Needs the ``metrics`` extra (``pip install 'zaudio[metrics]'``, for ``rich``).
``q`` or Ctrl-C quits; ``--once`` prints one snapshot instead (no terminal needed).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, TextIO

from zaudio.client import request
from zaudio.endpoints import control_endpoint
from zaudio.errors import ConfigError, ProxyUnreachable, ZaudioError
from zaudio.extras import require
from zaudio.security import Keys

__all__ = ["run_top"]

QUIT = {"q", "Q", "\x03", "\x04"}  # q, Ctrl-C, Ctrl-D


@contextlib.contextmanager
def _keys(fd: int) -> Iterator[None]:
    """The terminal in cbreak mode without signals: keys arrive one by one, Ctrl-C as ``\\x03``."""
    import termios

    saved = termios.tcgetattr(fd)
    mode = termios.tcgetattr(fd)
    mode[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG)
    mode[6][termios.VMIN] = 0
    mode[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, mode)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _read_key(fd: int, timeout: float) -> str:
    ready, _, _ = select.select([fd], [], [], max(timeout, 0.0))
    if not ready:
        return ""
    return os.read(fd, 32).decode(errors="replace")


class _Top:
    def __init__(self, proxy: str, keys: Keys | None, interval: float, listen: bool) -> None:
        from zaudio.top.levels import LevelTap
        from zaudio.top.model import Model

        self.proxy = proxy
        self.keys = keys
        self.interval = interval
        self.model = Model()
        self.tap = LevelTap(proxy, keys=keys) if listen else None

    def sample(self) -> Any:
        try:
            listing = request(
                self.proxy, {"op": "list"}, timeout=min(self.interval, 2.0), keys=self.keys
            )
            error = None
        except ZaudioError as exc:
            listing, error = None, str(exc)
        tap = self.tap
        heard = tap.take() if tap is not None else None
        listened = tap.listening_for() if tap is not None else 0.0
        return self.model.update(listing, heard, heard_for=listened, error=error)

    def screen(self, keys: bool = True) -> Any:
        from zaudio.top.view import render

        return render(self.sample(), time.strftime("%H:%M:%S"), keys=keys)


def run_top(
    proxy: str | None = None,
    *,
    keys: Keys | None = None,
    interval: float = 1.0,
    listen: bool = True,
    once: bool = False,
    stdout: TextIO | None = None,
) -> None:
    """Show the dashboard until ``q``, Ctrl-C, SIGTERM or SIGHUP; or print it once.

    Parameters
    ----------
    proxy : str, optional
        Control endpoint; ``tcp://127.0.0.1:5555`` by default.
    keys : Keys, optional
        CurveZMQ client keys.
    interval : float
        Seconds between refreshes.
    listen : bool
        Subscribe to every audio stream for its level and block rate (``False``:
        only what the heartbeats say; nothing but control requests on the wire).
    once : bool
        Print one snapshot (two samples ``interval`` apart, for the rates) and return.

    Raises
    ------
    ConfigError
        Bad arguments, no terminal without ``once``, the ``metrics`` extra
        missing, or no proxy answering at ``proxy`` at start.
    """
    rich_console = require("rich.console", "zaudio top")
    from rich.live import Live

    if not interval > 0:
        raise ConfigError(f"invalid --interval {interval}: must be more than 0")
    endpoint = control_endpoint(proxy)
    try:
        request(endpoint, {"op": "time"}, timeout=2.0, keys=keys)
    except ProxyUnreachable as exc:
        raise ConfigError(str(exc)) from None
    out = stdout or sys.stdout
    if not once and not (out.isatty() and sys.stdin.isatty()):
        raise ConfigError("zaudio top needs a terminal; use --once to print one snapshot")
    top = _Top(endpoint, keys, interval, listen)
    if top.tap is not None:
        top.tap.start()
    try:
        if once:
            top.sample()
            time.sleep(interval)  # the rates need a second sample one interval later
            rich_console.Console(file=out).print(top.screen(keys=False))
            return
        _live(top, rich_console.Console(file=out), Live)
    finally:
        if top.tap is not None:
            top.tap.stop()


def _live(top: _Top, console: Any, live_cls: Any) -> None:
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGHUP)}
    fd = sys.stdin.fileno()
    try:
        with (
            _keys(fd),
            live_cls(
                console=console,
                screen=True,
                auto_refresh=False,
                redirect_stdout=False,
                redirect_stderr=False,
            ) as live,
        ):
            due = 0.0
            while not stop.is_set():
                now = time.monotonic()
                if now >= due:
                    live.update(top.screen(), refresh=True)
                    due = now + top.interval
                # wakes at least every 0.25 s so SIGTERM is seen promptly
                typed = _read_key(fd, min(due - time.monotonic(), 0.25))
                if QUIT & set(typed):
                    return
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
