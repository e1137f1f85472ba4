"""``zaudio proxy``: the forwarder and the control channel."""

from __future__ import annotations

import click
from zaudio.cli.options import (
    check_port,
    client_keys,
    keys_option,
    server_keys,
    stop_on_signals,
)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", type=int, default=5555, show_default=True, help="Control port.")
@click.option("--pub-port", type=int, default=None, help="Publish-in (XSUB) port [port+1].")
@click.option("--sub-port", type=int, default=None, help="Subscribe-out (XPUB) port [port+2].")
@click.option(
    "--heartbeat", type=float, default=1.0, show_default=True, help="Seconds between heartbeats."
)
@click.option(
    "--metrics",
    default=None,
    metavar="HOST:PORT",
    help="Serve Prometheus metrics at http://HOST:PORT/metrics (needs zaudio[metrics]).",
)
@click.option(
    "--history",
    default=None,
    metavar="D",
    help="Keep the last D (30s, 2m) of every audio stream for late joiners (--since); off by default.",
)
@click.option(
    "--history-bytes",
    default="256MiB",
    show_default=True,
    metavar="N",
    help="The bound of everything --history keeps (500MB, 1GiB); the oldest goes first, counted.",
)
@click.option(
    "--upstream",
    default=None,
    metavar="EP",
    help="Federate with the hub proxy whose control endpoint is EP (tcp://HUB:5555).",
)
@click.option(
    "--upstream-keys",
    default=None,
    metavar="DIR",
    help="CurveZMQ client keys for the hub (its server.key, our client keypair) [--keys].",
)
@click.option("--name", default=None, help="This proxy's name in 'zaudio ls' [HOSTNAME:PORT].")
@keys_option
def proxy(
    host: str,
    port: int,
    pub_port: int | None,
    sub_port: int | None,
    heartbeat: float,
    keys: str | None,
    metrics: str | None,
    history: str | None,
    history_bytes: str,
    upstream: str | None,
    upstream_keys: str | None,
    name: str | None,
) -> None:
    """Run the forwarder (XSUB -> XPUB) and the control channel (REP)."""
    from zaudio.proxy import Proxy
    from zaudio.units import format_bytes, parse_bytes, parse_duration

    for value, what in ((port, "--port"), (pub_port, "--pub-port"), (sub_port, "--sub-port")):
        check_port(value, what)
    if heartbeat <= 0:
        raise click.BadParameter("must be more than 0", param_hint="--heartbeat")
    # one line and exit 2 for a bad value (cli/main.py)
    keep = parse_duration(history, "--history") if history is not None else None
    keep_bytes = parse_bytes(history_bytes, "--history-bytes")
    hub = hub_keys = None
    if upstream is not None:
        from zaudio.endpoints import control_endpoint

        hub = control_endpoint(upstream, "--upstream")
        hub_keys = client_keys(upstream_keys or keys)
    if name is not None and not name.strip():
        raise click.BadParameter("must not be empty", param_hint="--name")
    where = None
    if metrics is not None:
        from zaudio.metrics import MetricsServer, metrics_address

        # a bad HOST:PORT or a missing zaudio[metrics] fails before anything is bound
        where = metrics_address(metrics)
    stop = stop_on_signals()
    p = Proxy(
        host=host,
        port=port,
        pub_port=pub_port,
        sub_port=sub_port,
        keys=server_keys(keys),
        heartbeat=heartbeat,
        history=keep,
        history_bytes=keep_bytes,
        name=name,
        upstream=hub,
        upstream_keys=hub_keys,
    )
    # /metrics is served before the control port answers: whoever finds the proxy
    # up can scrape it (until start() the proxy's own counters are 0, its forwarder's absent)
    server = MetricsServer(p, *where) if where is not None else None
    try:
        p.start()
        click.echo(f"zaudio proxy: control {p.control}", nl=True)
        click.echo(f"zaudio proxy: publish-in {p.pub}  subscribe-out {p.sub}")
        click.echo(
            "zaudio proxy: CurveZMQ on" if keys else "zaudio proxy: no encryption (--keys DIR)"
        )
        if server is not None:
            click.echo(f"zaudio proxy: metrics {server.url}")
        if hub is not None:
            click.echo(f"zaudio proxy: {p.name!r}, upstream {hub}")
        if keep is not None:
            click.echo(f"zaudio proxy: history {keep:g} s, at most {format_bytes(keep_bytes)}")
        stop.wait()
    finally:
        if server is not None:
            server.close()
        p.stop()
    click.echo("zaudio proxy: stopped")
