"""CurveZMQ: only authorised peers register, publish or receive; loud when open on a LAN.

The secured proxy is a real ``zaudio proxy --keys DIR`` process with keys from a
real ``zaudio keygen``. Rogue peers are (a) a keypair the proxy never authorised,
which knows the server's public key, and (b) plaintext sockets.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from tests.helpers import env, free_ports, run, spawn, wait_until
from tests.netns import Lan
from zaudio.bus import Inlet, Outlet, Publisher, confirm_subscriptions
from zaudio.client import NodeClient, request
from zaudio.errors import ProxyUnreachable
from zaudio.protocol import AudioStream, decode, subscription
from zaudio.security import Keys

REFUSED_WAIT = 1.0  # seconds a rogue is given to get anything through


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("keys") / "bus"
    res = run("keygen", str(d))
    assert res.returncode == 0, res.stderr
    for name in ("server.key", "server.key_secret", "client.key", "client.key_secret"):
        assert (d / name).is_file()
    assert (d / "authorized" / "client.key").is_file()
    assert (d / "server.key_secret").stat().st_mode & 0o077 == 0
    return d


@pytest.fixture(scope="module")
def good(keydir: Path) -> Keys:
    return Keys.for_client(keydir)


@pytest.fixture(scope="module")
def rogue(keydir: Path, tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """A client keypair the proxy never authorised, holding the real server public key."""
    other = tmp_path_factory.mktemp("keys") / "rogue"
    assert run("keygen", str(other)).returncode == 0
    mine = Keys.for_client(other)
    return Keys(mine.public, mine.secret, Keys.for_client(keydir).server_public)


def _start_proxy(*args: str, **kw: Any) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_ports(3)
    with spawn("proxy", "--port", str(port), "--heartbeat", "0.2", *args, **kw) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "zaudio proxy: control ..." once bound
        assert "control" in line, (line, proc.stderr.read() if proc.stderr else "")
        yield f"tcp://127.0.0.1:{port}", proc


@pytest.fixture(scope="module")
def secure(keydir: Path) -> Iterator[str]:
    """A ``zaudio proxy --keys DIR`` process; yields its control endpoint."""
    for control, _proc in _start_proxy("--keys", str(keydir)):
        yield control


def _hello(control: str, keys: Keys) -> dict[str, Any]:
    return request(control, {"op": "hello"}, timeout=3, keys=keys)


@contextlib.contextmanager
def _subscriber(control: str, keys: Keys, pattern: str = "*") -> Iterator[Inlet]:
    """An authorised SUB whose subscription is proven at the proxy."""
    hello = _hello(control, keys)
    inlet = Inlet(keys=keys)
    inlet.connect(hello["sub"])
    inlet.subscribe(subscription(pattern))
    outlet = Outlet(keys=keys)
    try:
        outlet.connect(hello["pub"])
        assert confirm_subscriptions(inlet, outlet, 5)
    finally:
        outlet.close(0)
    try:
        yield inlet
    finally:
        inlet.close()


def _drain(inlet: Inlet, legit: int, then: float = 0.3, timeout: float = 20) -> list[Any]:
    """Every message received: until ``legit`` of them are on stream ``legit`` (bounded
    by ``timeout``), and whatever else comes ``then`` seconds after."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while sum(h.stream == "legit" for h, _ in got) < legit:
        left = deadline - time.monotonic()
        assert left > 0, f"{len(got)} messages in {timeout} s, {legit} legit ones expected"
        frames = inlet.recv(left)
        if frames is not None:
            got.append(decode(frames))
    while time.monotonic() < deadline + then and (frames := inlet.recv(then)) is not None:
        got.append(decode(frames))
    return got


def _raw(kind: int, keys: Keys | None, endpoint: str) -> zmq.Socket[Any]:
    sock: zmq.Socket[Any] = zmq.Context.instance().socket(kind)
    sock.linger = 0
    if keys is not None:
        keys.client_socket(sock)
    sock.connect(endpoint)
    return sock


def test_authorised_client_registers_publishes_and_receives(secure: str, good: Keys) -> None:
    with _subscriber(secure, good, "mic") as inlet:
        with Publisher("mic", rate=8000, proxy=secure, keys=good) as pub:
            assert pub.outlet.ready and pub.client.registered.is_set()
            for i in range(5):
                assert pub.send(np.full(80, i, np.float32))
            got = [decode(inlet.recv(5) or []) for _ in range(5)]
        assert [h.seq for h, _ in got] == [0, 1, 2, 3, 4]
        assert [float(b[0, 0]) for _, b in got] == [0, 1, 2, 3, 4]
    nodes = request(secure, {"op": "list"}, keys=good)["nodes"]
    assert "mic" not in [n["name"] for n in nodes]  # it disconnected on close


@pytest.mark.parametrize("who", ["rogue", "plaintext"])
def test_unauthorised_peer_cannot_register(secure: str, good: Keys, rogue: Keys, who: str) -> None:
    keys = rogue if who == "rogue" else None
    client = NodeClient(
        secure, role="recorder", name=f"intruder-{who}", keys=keys, timeout=0.4
    ).start()
    try:
        with pytest.raises(ProxyUnreachable):
            request(secure, {"op": "time"}, timeout=REFUSED_WAIT, keys=keys)
        assert not client.registered.is_set()
        assert client.endpoints is None and client.error is not None
    finally:
        client.close(0.1)
    names = [n["name"] for n in request(secure, {"op": "list"}, keys=good)["nodes"]]
    assert f"intruder-{who}" not in names
    # ... and the proxy serves authorised nodes as before.
    assert request(secure, {"op": "time"}, keys=good)["ok"]


@pytest.mark.parametrize("who", ["rogue", "plaintext"])
def test_unauthorised_peer_cannot_publish(secure: str, good: Keys, rogue: Keys, who: str) -> None:
    keys = rogue if who == "rogue" else None
    hello = _hello(secure, good)
    before = request(secure, {"op": "list"}, keys=good)["proxy"]["publishers"]
    with _subscriber(secure, good, "*") as inlet:
        # A rogue XPUB never hears the proxy's READY (no handshake, no subscriptions),
        # and a raw PUB "sends" into the void, while an authorised publisher sends too.
        outlet = Outlet(keys=keys)
        outlet.connect(hello["pub"])
        pub = _raw(zmq.PUB, keys, hello["pub"])
        evil = AudioStream("mic", 8000, 1)
        try:
            with Publisher("legit", rate=8000, proxy=secure, keys=good) as legit:
                deadline = time.monotonic() + REFUSED_WAIT
                sent = 0
                while time.monotonic() < deadline:
                    pub.send_multipart(evil.encode(np.ones(80, np.float32), time.time()))
                    outlet.send(evil.encode(np.ones(80, np.float32), time.time()))
                    outlet.pump()
                    assert legit.send(np.zeros(80, np.float32))
                    sent += 1
                    time.sleep(0.01)
                got = _drain(inlet, sent)
            assert not outlet.ready and not outlet.subscriptions
        finally:
            pub.close(0)
            outlet.close(0)
    assert sent > 30
    assert {h.stream for h, _ in got} == {"legit"}
    assert [h.seq for h, _ in got] == list(range(sent))
    # every refused handshake is counted: the proxy cut the intruder off (again and again)
    after = request(secure, {"op": "list"}, keys=good)["proxy"]
    assert after["publishers"]["refused"] > before["refused"], (before, after)
    assert after["publishers"]["cut_off"] == before["cut_off"] == 0
    assert after["refused"]["publishers"] == after["publishers"]["refused"]


@pytest.mark.parametrize("who", ["rogue", "plaintext"])
def test_unauthorised_peer_receives_nothing(secure: str, good: Keys, rogue: Keys, who: str) -> None:
    keys = rogue if who == "rogue" else None
    hello = _hello(secure, good)
    spy = _raw(zmq.SUB, keys, hello["sub"])
    spy.subscribe(b"")
    try:
        with _subscriber(secure, good, "mic") as inlet:
            with Publisher("mic", rate=8000, proxy=secure, keys=good) as pub:
                n = 100
                for _ in range(n):
                    assert pub.send(np.zeros(80, np.float32))
                    time.sleep(0.01)
                got = [inlet.recv(5) for _ in range(n)]
        assert all(f is not None for f in got)
        assert not spy.poll(500), "an unauthorised subscriber received a message"
    finally:
        spy.close(0)


def test_zaudio_keys_env_works_like_the_option(keydir: Path, tmp_path: Path) -> None:
    port = free_ports(3)
    control = f"tcp://127.0.0.1:{port}"
    keyed = env(ZAUDIO_KEYS=str(keydir), ZAUDIO_PROXY=control)
    # The proxy takes ZAUDIO_KEYS as --keys, and so does every client command.
    with spawn("proxy", "--port", str(port), env=keyed) as proc:
        assert proc.stdout is not None
        assert "control" in proc.stdout.readline()
        assert "CurveZMQ on" in proc.stdout.readline() + proc.stdout.readline()
        ls = run("ls", "--json", env=keyed)
        assert ls.returncode == 0, ls.stderr
        assert '"nodes"' in ls.stdout
        ls = run("ls", "--json", "--keys", str(keydir), "--proxy", control)
        assert ls.returncode == 0, ls.stderr
        plain = run("ls", "--json", "--timeout", "1", env=env(ZAUDIO_PROXY=control))
        assert plain.returncode == 1 and "no reply" in plain.stderr
        assert plain.stderr.count("\n") == 1  # one line, no traceback


def test_bad_key_directory_is_one_line_usage_error(tmp_path: Path) -> None:
    res = run("ls", "--keys", str(tmp_path / "nope"))
    assert res.returncode == 2
    assert "keygen" in res.stderr and res.stderr.count("\n") == 1
    res = run("proxy", "--keys", str(tmp_path / "nope"))
    assert res.returncode == 2 and "keygen" in res.stderr
    res = run("keygen", str(tmp_path / "k"))
    assert res.returncode == 0
    again = run("keygen", str(tmp_path / "k"))
    assert again.returncode == 2 and "already exists" in again.stderr


def _proxy_stderr(lan: Lan, *args: str) -> str:
    proc = lan.zaudio("px", "proxy", *args)
    assert proc.stdout is not None and proc.stderr is not None
    wait_until(lambda: "control" in proc.stdout.readline(), 15, "proxy to bind")  # type: ignore[union-attr]
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    return err


def test_proxy_warns_when_open_beyond_loopback(keydir: Path) -> None:
    warning = "without --keys"
    with Lan("px") as lan:  # 0.0.0.0 is bound only inside a namespace this test made
        assert warning in _proxy_stderr(lan, "--host", "0.0.0.0")
        assert warning in _proxy_stderr(lan, "--host", lan.ip("px"))
        assert warning not in _proxy_stderr(lan, "--host", "0.0.0.0", "--keys", str(keydir))
        assert warning not in _proxy_stderr(lan)  # loopback by default
