"""``zaudio web``: the capture and monitor pages (needs the ``web`` extra)."""

from __future__ import annotations

import click
from zaudio.cli.options import check_port, client_keys, keys_option, proxy_option, stop_on_signals

from zaudio.errors import ConfigError
from zaudio.extras import require


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", type=int, default=8080, show_default=True, help="HTTP/WebSocket port.")
@proxy_option
@keys_option
@click.option("--tls-cert", metavar="PEM", default=None, help="Serve https with this certificate.")
@click.option("--tls-key", metavar="PEM", default=None, help="Private key of --tls-cert.")
def web(
    host: str,
    port: int,
    proxy: str,
    keys: str | None,
    tls_cert: str | None,
    tls_key: str | None,
) -> None:
    """Serve the browser capture page (/capture) and the live monitor (/monitor).

    Loopback by default. Browsers allow the microphone only on https or
    localhost: to capture from other devices, bind --host 0.0.0.0 behind a TLS
    reverse proxy, or pass --tls-cert/--tls-key (see docs/web.md).
    """
    import asyncio
    import ssl

    check_port(port, "--port")
    require("websockets", "zaudio web")
    from zaudio.web import WebServer, is_loopback

    tls = None
    if tls_cert or tls_key:
        if not tls_cert:
            raise click.BadParameter("--tls-key needs --tls-cert", param_hint="--tls-key")
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            tls.load_cert_chain(tls_cert, tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the TLS certificate {tls_cert}: {exc}") from None
    import logging

    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # one line per HTTP request is for -vv only
        logging.getLogger("websockets").setLevel(logging.WARNING)
    stop = stop_on_signals()
    server = WebServer(host=host, port=port, proxy=proxy, keys=client_keys(keys), tls=tls)

    async def main() -> None:
        try:
            await server.start()
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        click.echo(f"zaudio web: {server.url}/  (capture {server.url}/capture, monitor /monitor)")
        if not is_loopback(host):
            click.echo(
                f"zaudio web: WARNING: serving beyond loopback on {host}"
                + ("" if tls else " without TLS: remote browsers will refuse the microphone"),
                err=True,
            )
        try:
            await asyncio.to_thread(stop.wait)
        finally:
            await server.stop()

    asyncio.run(main())
    click.echo("zaudio web: stopped")
