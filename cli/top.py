"""``zaudio top``: a live dashboard of streams, processors and publishers."""

from __future__ import annotations

import logging

import click
from zaudio.cli.options import client_keys, keys_option, proxy_option


@click.command()
@click.option(
    "--interval", type=float, default=1.0, show_default=True, help="Seconds between refreshes."
)
@click.option(
    "--no-listen",
    "no_listen",
    is_flag=True,
    help="Do not subscribe to the audio (no LEVEL; blocks/s from heartbeats).",
)
@click.option("--once", is_flag=True, help="Print one snapshot and exit (no terminal needed).")
@proxy_option
@keys_option
def top(interval: float, no_listen: bool, once: bool, proxy: str, keys: str | None) -> None:
    """Live dashboard: streams, processors and publishers, refreshed every second (q quits)."""
    from zaudio.top import run_top

    if not once:
        # log lines would tear the screen: nothing below CRITICAL while it is shown
        logging.disable(logging.ERROR)
    run_top(proxy, keys=client_keys(keys), interval=interval, listen=not no_listen, once=once)
