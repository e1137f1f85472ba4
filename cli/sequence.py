"""``zaudio sequence``: a group's audio output as one stream in index order."""

from __future__ import annotations

import click
from zaudio.cli.options import client_keys, keys_option, proxy_option, stop_on_signals


@click.command()
@click.argument("stream", metavar="OUTPUT")
@click.option(
    "--reorder",
    default="2s",
    show_default=True,
    metavar="D",
    help="How long a missing block is waited for before it is skipped (counted).",
)
@proxy_option
@keys_option
def sequence(stream: str, reorder: str, proxy: str, keys: str | None) -> None:
    """Publish the parts of a group's audio output (OUTPUT/part/*, one per member)
    as the one stream OUTPUT, in index order: what a downstream processor reads.
    OUTPUT is the group's --output, by default the group's name."""
    from zaudio.sequencer import Sequencer

    seq = Sequencer(stream, reorder=reorder, proxy=proxy, keys=client_keys(keys))
    seq.run(stop_on_signals())
    click.echo("sequence: " + ", ".join(f"{k} {v}" for k, v in seq.stats().items()), err=True)
