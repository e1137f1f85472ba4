"""``zaudio bridge``: LSL (Lab Streaming Layer) to and from the bus."""

from __future__ import annotations

import click
from zaudio.cli.options import client_keys, keys_option, proxy_option, stop_on_signals


@click.command()
@click.argument("mode", metavar="lsl-out|lsl-in")
@click.argument("name", required=False, metavar="[NAME]")
@click.option("--topic", default=None, metavar="S", help="lsl-out: the bus stream to send.")
@click.option("--stream", default=None, metavar="S", help="lsl-in: the bus name [NAME].")
@click.option(
    "--wait", type=float, default=10.0, show_default=True, help="lsl-in: seconds to find NAME."
)
@proxy_option
@keys_option
def bridge(
    mode: str,
    name: str | None,
    topic: str | None,
    stream: str | None,
    wait: float,
    proxy: str,
    keys: str | None,
) -> None:
    """lsl-out --topic S [NAME]: bus stream S as an LSL outlet (called NAME, default S).
    lsl-in NAME [--stream S]: the LSL stream NAME published on the bus (as S)."""
    from zaudio.errors import ConfigError
    from zaudio.lsl import lsl_in, lsl_out

    if mode not in ("lsl-out", "lsl-in"):
        raise ConfigError(f"unknown bridge {mode!r}: use lsl-out or lsl-in")
    stop = stop_on_signals()
    if mode == "lsl-out":
        if topic is None:
            raise ConfigError("zaudio bridge lsl-out needs --topic S: the bus stream to send")
        lsl_out(topic, proxy=proxy, keys=client_keys(keys), name=name, until=stop)
        return
    if name is None:
        raise ConfigError("zaudio bridge lsl-in needs NAME: the LSL stream to publish")
    lsl_in(name, stream=stream, proxy=proxy, keys=client_keys(keys), wait=wait, until=stop)
