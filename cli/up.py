"""``zaudio up FILE``: run and supervise a whole pipeline in the foreground."""

from __future__ import annotations

from typing import Any

import click
from zaudio.cli.check import load_or_exit
from zaudio.cli.options import duration, stop_on_signals


def _file(file: str | None, example: str | None) -> str | None:
    """The pipeline file to run; None after listing the shipped examples."""
    from zaudio.pipeline.examples import example as shipped
    from zaudio.pipeline.examples import examples

    if example == "":
        for name, path in examples().items():
            first = path.read_text(encoding="utf-8").splitlines()[0].lstrip("# ")
            click.echo(f"{name:<10} {first}")
        return None
    if (file is None) == (example is None):
        raise click.UsageError(
            "give a pipeline FILE or --example NAME (--example alone lists them)"
        )
    return file if example is None else str(shipped(example))


def _export(pipeline: Any, kind: str, image: str | None, out: str | None) -> None:
    from pathlib import Path

    from zaudio.pipeline.export import IMAGE, to_compose
    from zaudio.pipeline.k8s import to_k8s

    base = Path(out).resolve().parent if out else Path.cwd()
    if kind == "compose":
        text = to_compose(pipeline, base, image or IMAGE)
    else:
        text = to_k8s(pipeline, image or "zaudio:latest")
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        Path(out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror}") from None
    click.echo(f"zaudio up: wrote {out}", err=True)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False), required=False)
@click.option(
    "--example",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="NAME",
    help="Run a pipeline shipped with zaudio (alone: list them).",
)
@click.option(
    "--export",
    "export",
    type=click.Choice(["compose", "k8s"]),
    default=None,
    help="Write the graph as a compose file or Kubernetes manifests instead of running it.",
)
@click.option(
    "--image",
    default=None,
    help="Image for --export [compose: ${ZAUDIO_IMAGE:-zaudio:latest}; k8s: zaudio:latest].",
)
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Where --export writes [stdout].",
)
@click.option(
    "--status/--no-status", default=True, show_default=True, help="Show the one-line-per-node view."
)
@click.option(
    "--status-every",
    default=None,
    metavar="D",
    help="Redraw the view every D [1s on a terminal, else 30s and on every change].",
)
@click.option(
    "--stop-timeout",
    default="10s",
    show_default=True,
    metavar="D",
    help="How long each node may take to stop before it is killed.",
)
def up(
    file: str | None,
    example: str | None,
    export: str | None,
    image: str | None,
    out: str | None,
    status: bool,
    status_every: str | None,
    stop_timeout: str,
) -> None:
    """Check the pipeline FILE, start its proxy, recorders and processors, keep them
    running (restart with back-off), and stop them all in order on Ctrl-C/SIGTERM."""
    import logging
    import sys

    from zaudio.pipeline.status import StatusView
    from zaudio.pipeline.supervisor import Output, Supervisor

    interval = duration(status_every, "--status-every")
    stop_s = duration(stop_timeout, "--stop-timeout")
    assert stop_s is not None
    path = _file(file, example)
    if path is None:
        return
    pipeline = load_or_exit(path)
    if export is not None:
        _export(pipeline, export, image, out)
        return
    output = Output(sys.stdout, sys.stderr)
    verbose = logging.getLogger().getEffectiveLevel() <= logging.DEBUG
    supervisor = Supervisor(pipeline, output=output, quiet_children=not verbose)
    # first Ctrl-C/SIGTERM: stop in order; a second: SIGKILL every node, exit 130
    stop = stop_on_signals(before_exit=supervisor.kill_all)
    view = StatusView(output, interval) if status else None
    tick = (lambda: view.update(supervisor.children, supervisor.listing)) if view else None
    click.echo(
        f"zaudio up: {path} ({len(pipeline.processes)} nodes); Ctrl-C stops them all", err=True
    )
    code = supervisor.run(stop, tick, stop_timeout=stop_s)
    click.echo("zaudio up: stopped", err=True)
    raise click.exceptions.Exit(code)
