"""``zaudio record``: publish one audio stream from a source."""

from __future__ import annotations

import logging

import click
from zaudio.cli.options import client_keys, duration, keys_option, proxy_option, stop_on_signals


@click.command()
@click.option(
    "--source",
    default="mic",
    show_default=True,
    metavar="SRC",
    help="mic, device:N, device:NAME, sine:FREQ[:AMP], noise[:AMP], speech[:AMP], "
    "chirp[:F0[:F1[:PERIOD]]], file:PATH (or a bare path), or - (raw float32 on stdin).",
)
@click.option("--stream", default="mic", show_default=True, help="Stream name on the bus.")
@click.option("--rate", type=int, default=None, help="Sample rate in Hz [48000; a file's own].")
@click.option("--channels", type=int, default=None, help="Channel count [1; a file's own].")
@click.option("--block", default="10ms", show_default=True, help="Block size: 10ms or frames.")
@click.option(
    "--duration",
    "duration_",
    default=None,
    metavar="D",
    envvar="ZAUDIO_RECORD_DURATION",
    help="Stop after D (1.5s).",
)
@click.option(
    "--buffer",
    default="10s",
    show_default=True,
    metavar="D",
    help="Audio kept while the proxy is away; the oldest beyond it is dropped (counted).",
)
@click.option("--fast", is_flag=True, help="Do not pace synthetic/file sources; never drop.")
@click.option("--loop", is_flag=True, help="Repeat a file source when it ends.")
@proxy_option
@keys_option
def record(
    source: str,
    stream: str,
    rate: int | None,
    channels: int | None,
    block: str,
    duration_: str | None,
    buffer: str,
    fast: bool,
    loop: bool,
    proxy: str,
    keys: str | None,
) -> None:
    """Publish one audio stream (a device, a signal, a file or stdin) until stopped."""
    from zaudio.recorder import Recorder

    seconds = duration(duration_, "--duration")
    buffer_s = duration(buffer, "--buffer")
    assert buffer_s is not None
    recorder = Recorder(
        source,
        stream=stream,
        proxy=proxy,
        keys=client_keys(keys),
        duration=seconds,
        buffer=buffer_s,
        rate=rate,
        channels=channels,
        block=block,
        fast=fast,
        loop=loop,
    )
    stop = stop_on_signals()
    # A refused registration ends the command with its own one-line error:
    # the node client's log line saying the same would be a second line.
    client = recorder.client
    logging.getLogger("zaudio.client").addFilter(
        lambda record: client.refused is None or record.levelno < logging.ERROR
    )
    recorder.run(until=stop)
