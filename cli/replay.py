"""``zaudio replay``: a capture back on the bus."""

from __future__ import annotations

import click
from zaudio.cli.options import client_keys, keys_option, proxy_option, stop_on_signals


@click.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--speed", type=float, default=1.0, show_default=True, help="2 = twice real time.")
@click.option("--fast", is_flag=True, help="As fast as the bus takes it, without loss.")
@click.option("--loop", is_flag=True, help="Start again at the end (a new src each pass).")
@click.option(
    "--topic",
    "topics",
    multiple=True,
    metavar="S",
    help="Stream to replay: a name, a prefix 'lab-a/' or '*' (default: every stream).",
)
@click.option("--rename", "renames", multiple=True, metavar="A=B", help="Publish stream A as B.")
@click.option("--results/--no-results", default=True, show_default=True, help="Replay results too.")
@click.option("--name", default="replay", show_default=True, help="Node name in 'zaudio ls'.")
@proxy_option
@keys_option
def replay(
    files: tuple[str, ...],
    speed: float,
    fast: bool,
    loop: bool,
    topics: tuple[str, ...],
    renames: tuple[str, ...],
    results: bool,
    name: str,
    proxy: str,
    keys: str | None,
) -> None:
    """Republish a capture (rotation parts in the order given): fresh src, the same
    index, frames and payload bytes, the recorded timing."""
    from zaudio.capture.replay import Replay, parse_rename

    rep = Replay(
        files,
        proxy=proxy,
        keys=client_keys(keys),
        speed=speed,
        fast=fast,
        loop=loop,
        topics=topics or None,
        results=results,
        rename=parse_rename(renames),
        name=name,
    )
    stats = rep.run(stop_on_signals())
    click.echo(
        f"replayed {stats['sent']} blocks and {stats['results']} results "
        f"({stats['dropped']} blocks dropped, {stats['unsent']} results unsent)",
        err=True,
    )
