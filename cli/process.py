"""``zaudio process``: run a function or class on every block of some streams."""

from __future__ import annotations

import os
import sys

import click
from zaudio.cli.options import (
    client_keys,
    format_options,
    keys_option,
    proxy_option,
    stop_on_signals,
)


@click.command()
@click.argument("target", metavar="MODULE:ATTR")
@click.option(
    "--topic",
    "topics",
    multiple=True,
    metavar="STREAM",
    help="Stream to process: a name (exact), a prefix 'lab-a/' or '*' (default: every stream).",
)
@click.option("--name", default=None, help="Processor name (results go to result/NAME).")
@click.option(
    "--output", default=None, help="Stream name for arrays the function returns (default: NAME)."
)
@click.option("--window", default=None, metavar="D", help="Re-block into windows: 25ms or frames.")
@click.option("--hop", default=None, metavar="D", help="Step between windows (default: --window).")
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Keyword argument for the class or function (JSON value, else a string).",
)
@click.option(
    "--on-overrun",
    type=click.Choice(["drop-oldest", "drop-newest"]),
    default="drop-oldest",
    show_default=True,
    help="What the queue drops while the function is slower than the stream.",
)
@click.option("--queue", type=click.IntRange(min=1), default=100, show_default=True,
              help="Queue capacity in messages while the function is busy.")  # fmt: skip
@click.option(
    "--on-error",
    type=click.Choice(["log", "stop"]),
    default="log",
    show_default=True,
    help="When the function raises: log, count and go on, or stop (exit 1).",
)
@click.option(
    "--group",
    default=None,
    metavar="NAME",
    help="Share the work with every processor of group NAME: each block once (result/NAME).",
)
@click.option(
    "--since",
    default=None,
    metavar="D",
    help="Start D (2s) before live: the proxy's --history first, then live, with no gap.",
)
@format_options
@proxy_option
@keys_option
def process(
    target: str,
    topics: tuple[str, ...],
    name: str | None,
    output: str | None,
    window: str | None,
    hop: str | None,
    params: tuple[str, ...],
    on_overrun: str,
    queue: int,
    on_error: str,
    group: str | None,
    since: str | None,
    rate: int | None,
    channels: int | None,
    dtype: str | None,
    pick: str | None,
    proxy: str,
    keys: str | None,
) -> None:
    """Run MODULE:ATTR (a function or class; a path/to/file.py:ATTR; or a built-in
    such as 'level') on every block of the subscribed streams."""
    from zaudio.importer import parse_params
    from zaudio.runtime import Processor

    # Like 'python -m': modules in the current directory can be imported.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    proc = Processor(
        target,
        topics=topics or None,
        name=name,
        output=output,
        window=window,
        hop=hop,
        proxy=proxy,
        keys=client_keys(keys),
        params=parse_params(params),
        on_overrun=on_overrun,  # type: ignore[arg-type]
        queue=queue,
        on_error=on_error,  # type: ignore[arg-type]
        rate=rate,
        channels=channels,
        dtype=dtype,
        pick=pick,
        group=group,
        since=since,
    )
    proc.run(stop_on_signals())
