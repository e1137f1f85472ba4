"""CurveZMQ keys: ``zaudio keygen DIR``, and applying keys to sockets.

A key directory holds pyzmq certificate files::

    DIR/server.key  DIR/server.key_secret     the proxy's keypair
    DIR/client.key  DIR/client.key_secret     a node's keypair
    DIR/authorized/*.key                      public keys the proxy admits

The proxy needs ``server.key_secret`` and ``authorized/``; a node needs
``client.key_secret`` and ``server.key``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zaudio.errors import ConfigError

__all__ = ["Keys", "keygen"]


@dataclass(frozen=True)
class Keys:
    """CurveZMQ material for one side: our keypair, and the server's public key."""

    public: bytes
    secret: bytes
    server_public: bytes
    authorized: Path | None = None

    @classmethod
    def for_server(cls, directory: str | os.PathLike[str]) -> Keys:
        d = Path(directory)
        public, secret = _load(d / "server.key_secret")
        authorized = d / "authorized"
        if not authorized.is_dir():
            raise ConfigError(f"{authorized} does not exist: run 'zaudio keygen {d}'")
        return cls(public, secret, public, authorized)

    @classmethod
    def for_client(cls, directory: str | os.PathLike[str]) -> Keys:
        d = Path(directory)
        public, secret = _load(d / "client.key_secret")
        server_public, _ = _load(d / "server.key", secret=False)
        return cls(public, secret, server_public)

    def server_socket(self, sock: Any) -> None:
        """Make ``sock`` a CURVE server with our secret key."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True

    def client_socket(self, sock: Any) -> None:
        """Make ``sock`` a CURVE client of the server whose public key we hold."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_serverkey = self.server_public


def _load(path: Path, secret: bool = True) -> tuple[bytes, bytes]:
    import zmq.auth

    if not path.is_file():
        raise ConfigError(f"key file {path} not found: run 'zaudio keygen {path.parent}'")
    try:
        public, secret_key = zmq.auth.load_certificate(str(path))
    except (ValueError, OSError) as exc:
        raise ConfigError(f"cannot read key file {path}: {exc}") from exc
    if secret and not secret_key:
        raise ConfigError(f"{path} holds no secret key")
    return public, secret_key or b""


def keygen(directory: str | os.PathLike[str]) -> list[Path]:
    """Write a server and a client keypair into ``directory`` and authorize the client.

    Returns the files written. Existing key files are never overwritten.
    """
    import zmq.auth

    d = Path(directory)
    existing = [d / n for n in ("server.key", "client.key") if (d / n).exists()]
    if existing:
        raise ConfigError(f"{existing[0]} already exists: pick an empty directory")
    (d / "authorized").mkdir(parents=True, exist_ok=True)
    server_pub, server_sec = zmq.auth.create_certificates(str(d), "server")
    client_pub, client_sec = zmq.auth.create_certificates(str(d), "client")
    for secret in (server_sec, client_sec):
        os.chmod(secret, 0o600)
    authorized = d / "authorized" / "client.key"
    authorized.write_bytes(Path(client_pub).read_bytes())
    return [Path(p) for p in (server_pub, server_sec, client_pub, client_sec)] + [authorized]
