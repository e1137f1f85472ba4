"""``zaudio demo``: proxy, recorder and processors together on a synthetic signal."""

from __future__ import annotations

import click
from zaudio.cli.options import duration, stop_on_signals


@click.command()
@click.option(
    "--duration",
    "duration_",
    default="10s",
    show_default=True,
    metavar="D",
    help="How long to record (e.g. 30s, 2m); 0 runs until Ctrl-C.",
)
@click.option(
    "--out",
    default="zaudio-demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Directory for the recorded file.",
)
@click.option("--port", type=int, default=None, help="Control port [5555, or free ports].")
def demo(duration_: str, out: str, port: int | None) -> int:
    """Run a proxy, a recorder and level/vad/writer processors and show what flows.

    Needs no microphone: the recorder plays speech-like bursts over quiet noise.
    """
    from zaudio.demo import run_demo

    seconds = None if duration_.strip() in ("0", "0s") else duration(duration_, "--duration")
    return run_demo(duration=seconds, out_dir=out, port=port, stop=stop_on_signals())
