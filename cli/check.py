"""``zaudio check FILE``: every mistake of a pipeline file, one line each."""

from __future__ import annotations

from typing import Any

import click


def load_or_exit(file: str) -> Any:
    """The checked pipeline in ``file``; else each mistake on stderr and exit 2."""
    from zaudio.pipeline import check

    pipeline, problems = check(file)
    for problem in problems:
        click.echo(problem.format(file), err=True)
    if pipeline is None:
        raise click.exceptions.Exit(2)
    return pipeline


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
def check(file: str) -> None:
    """Check the pipeline FILE: each mistake as FILE:LINE: what is wrong — what to do."""
    pipeline = load_or_exit(file)
    kinds = [n.kind for n in pipeline.nodes]
    replicated = [f"{n.name} x{n.replicas}" for n in pipeline.nodes if n.replicas != 1]
    click.echo(
        f"{file}: ok — proxy {pipeline.control}"
        f"{'' if pipeline.started_proxy else ' (running elsewhere)'}, "
        f"{kinds.count('recorder')} recorder(s), {kinds.count('processor')} processor(s)"
        + (f" (replicas: {', '.join(replicated)})" if replicated else "")
        + (f", {kinds.count('sequencer')} sequencer(s)" if "sequencer" in kinds else "")
    )
