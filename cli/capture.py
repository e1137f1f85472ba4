"""``zaudio capture``: record every message of the bus it subscribes to into a file."""

from __future__ import annotations

import click
from zaudio.cli.options import client_keys, duration, keys_option, proxy_option, stop_on_signals


@click.command()
@click.argument("out", metavar="OUT")
@click.option(
    "--topic",
    "topics",
    multiple=True,
    metavar="S",
    help="Stream to record: a name, a prefix 'lab-a/' or '*' (default: every stream).",
)
@click.option(
    "--results/--no-results", default=True, show_default=True, help="Record processors' results."
)
@click.option("--duration", "duration_", default=None, metavar="D", help="Stop after D (10s).")
@click.option(
    "--rotate",
    default=None,
    metavar="SIZE|D",
    help="Start a new file (OUT stem + .0000, .0001, ...) every SIZE (100MB) or D (10m).",
)
@click.option("--name", default="capture", show_default=True, help="Node name in 'zaudio ls'.")
@proxy_option
@keys_option
def capture(
    out: str,
    topics: tuple[str, ...],
    results: bool,
    duration_: str | None,
    rotate: str | None,
    name: str,
    proxy: str,
    keys: str | None,
) -> None:
    """Record audio and results, as they came off the wire, into the capture file OUT."""
    from zaudio.capture.node import Capture

    cap = Capture(
        out,
        topics=topics,
        results=results,
        proxy=proxy,
        keys=client_keys(keys),
        duration=duration(duration_, "--duration"),
        rotate=rotate,
        name=name,
    )
    stats = cap.run(stop_on_signals())
    paths = ", ".join(str(p) for p in (cap.writer.paths if cap.writer else []))
    click.echo(
        f"captured {stats['written']} messages ({stats['received']} audio, "
        f"{stats['results']} results; {stats['gaps']} gaps) into {paths}",
        err=True,
    )
