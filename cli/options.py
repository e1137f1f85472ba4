"""Options shared by several commands, and running until a signal."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import click

from zaudio.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


def _proxy_endpoint(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    """Check ``--proxy`` (or ``ZAUDIO_PROXY``) while parsing, before any command runs."""
    from zaudio.endpoints import control_endpoint

    try:
        return control_endpoint(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def proxy_option(f: F) -> F:
    return click.option(
        "--proxy",
        envvar="ZAUDIO_PROXY",
        default="tcp://127.0.0.1:5555",
        show_default=True,
        metavar="EP",
        callback=_proxy_endpoint,
        help="Control endpoint of the proxy (env ZAUDIO_PROXY).",
    )(f)


def keys_option(f: F) -> F:
    return click.option(
        "--keys",
        envvar="ZAUDIO_KEYS",
        metavar="DIR",
        default=None,
        help="CurveZMQ key directory from 'zaudio keygen' (env ZAUDIO_KEYS).",
    )(f)


def format_options(f: F) -> F:
    """``--rate --channels --dtype --pick``: the format a receiving node asks for
    (checked by :func:`zaudio.adapt.check_format`)."""
    options = [
        click.option("--rate", type=int, default=None, metavar="HZ",
                     help="Resample every stream to HZ before the call (e.g. 16000)."),
        click.option("--channels", type=int, default=None, metavar="N",
                     help="Channels to receive: 1 averages them (mono)."),
        click.option("--dtype", type=click.Choice(["float32", "int16"]), default=None,
                     help="Sample type to receive (int16: rounded, clipped and counted)."),
        click.option("--pick", default=None, metavar="0,2",
                     help="Receive only these source channels (numbered from 0)."),
    ]  # fmt: skip
    for option in reversed(options):
        f = option(f)
    return f


def client_keys(directory: str | None) -> Any:
    """Client-side keys from ``--keys`` (None without it)."""
    if not directory:
        return None
    from zaudio.security import Keys

    return Keys.for_client(directory)


def server_keys(directory: str | None) -> Any:
    if not directory:
        return None
    from zaudio.security import Keys

    return Keys.for_server(directory)


def duration(value: str | None, what: str) -> float | None:
    if value is None:
        return None
    from zaudio.units import parse_duration

    return parse_duration(value, what)


def stop_on_signals(before_exit: Callable[[], object] | None = None) -> threading.Event:
    """An event set by the first SIGINT/SIGTERM; a second one exits at once
    (after ``before_exit()``, e.g. killing child processes)."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            if before_exit is not None:
                before_exit()
            os._exit(130)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def check_port(value: int | None, what: str) -> None:
    if value is not None and not 0 <= value <= 65535:
        raise ConfigError(f"invalid {what} {value}: use 1-65535")
