"""``zaudio keygen DIR``: CurveZMQ keypairs for a secure bus."""

from __future__ import annotations

import click


@click.command()
@click.argument("directory", type=click.Path(file_okay=False))
def keygen(directory: str) -> None:
    """Write server and client keypairs into DIRECTORY and authorize the client.

    Give DIRECTORY to 'zaudio proxy --keys' and to every node's --keys. Copy
    server.key, client.key and client.key_secret to other hosts; keep
    server.key_secret on the proxy's host only.
    """
    from zaudio.security import keygen as write_keys

    for path in write_keys(directory):
        click.echo(str(path))
