"""``zaudio results``: print a processor's (or a group's) results as JSON lines."""

from __future__ import annotations

import sys

import click
from zaudio.cli.options import client_keys, keys_option, proxy_option


@click.command()
@click.argument("processor", metavar="NAME")
@click.option("--ordered", is_flag=True, help="In index order per stream (a group's results).")
@click.option(
    "--reorder",
    default="2s",
    show_default=True,
    metavar="D",
    help="With --ordered: how long a missing result is waited for before it is skipped.",
)
@click.option("--count", type=click.IntRange(min=1), default=None, help="Stop after N results.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="S", help="Stop when nothing arrives for S seconds.")  # fmt: skip
@proxy_option
@keys_option
def results(
    processor: str,
    ordered: bool,
    reorder: str,
    count: int | None,
    timeout: float | None,
    proxy: str,
    keys: str | None,
) -> None:
    """Print the results of NAME (result/NAME), one JSON object a line:
    {"processor", "stream", "index", "frames", "t", "data"}."""
    from zaudio.ordered import results as stream_results
    from zaudio.protocol import encode_json

    stats: dict[str, object] = {}
    it = stream_results(
        processor,
        ordered=ordered,
        reorder=reorder,
        proxy=proxy,
        keys=client_keys(keys),
        timeout=timeout,
        stats=stats,
    )
    n = 0
    try:
        for r in it:
            line = {"processor": r.processor, "stream": r.stream, "index": r.index,
                    "frames": r.frames, "t": r.t, "data": r.data}  # fmt: skip
            sys.stdout.write(encode_json(line).decode() + "\n")
            sys.stdout.flush()
            n += 1
            if count is not None and n >= count:
                break
    except KeyboardInterrupt:
        pass
    finally:
        it.close()
    click.echo("results: " + ", ".join(f"{k} {v}" for k, v in stats.items()), err=True)
