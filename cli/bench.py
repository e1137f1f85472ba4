"""``zaudio bench``: measure zaudio against plain pyzmq (PUB -> zmq.proxy -> SUB) in one run."""

from __future__ import annotations

import click

_CHOICES = [
    "codec", "adapt", "backfill", "startup", "latency", "capacity", "fan-in", "fan-out", "groups",
    "pipeline",
]  # fmt: skip


@click.command()
@click.option("--quick", is_flag=True, help="Short runs (under a minute): a smoke test.")
@click.option("--json", "json_path", default=None, metavar="FILE", help="Write every figure here.")
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    type=click.Choice(_CHOICES),
    help="Run only these scenarios (repeatable; default: all but 'groups' and 'pipeline', "
    "run only when named).",
)
def bench(quick: bool, json_path: str | None, scenarios: tuple[str, ...]) -> None:
    """Run zaudio's real processes and, interleaved, a plain pyzmq baseline; print
    medians and ratios (see docs/benchmarks.md)."""
    from zaudio.bench.runner import run

    run(quick=quick, only=list(scenarios) or None, json_path=json_path, say=click.echo)
