"""The node client: timeouts, lazy pirate, re-registration, clock offset; and `zaudio ls`."""

from __future__ import annotations

import json
import signal
import threading
import time
from typing import Any

import numpy as np
import pytest
import zmq

from tests.helpers import (
    Listener,
    env,
    free_ports,
    listing,
    proxy_process,
    run,
    spawn,
    stop,
    wait_node,
    wait_until,
)
from zaudio import clock
from zaudio.bus import Publisher
from zaudio.client import NodeClient, Requester, request
from zaudio.errors import ConfigError, ProxyUnreachable
from zaudio.proxy import Proxy


def test_request_without_proxy_times_out() -> None:
    port = free_ports(1)
    t0 = time.monotonic()
    with pytest.raises(ProxyUnreachable, match="no reply"):
        request(f"tcp://127.0.0.1:{port}", {"op": "time"}, timeout=0.3)
    assert time.monotonic() - t0 < 1.0


def test_node_client_without_proxy_never_hangs() -> None:
    port = free_ports(1)
    client = NodeClient(f"tcp://127.0.0.1:{port}", role="recorder", name="x", timeout=0.2)
    client.start()
    wait_until(lambda: client.error, 3, "the client to report the proxy unreachable")
    assert "no reply" in (client.error or "")
    assert not client.registered.is_set() and client.endpoints is None
    t0 = time.monotonic()
    client.close(timeout=0.2)
    assert time.monotonic() - t0 < 1.5


def test_lazy_pirate_discards_stale_replies() -> None:
    """A server that answers late: the late reply is never taken for the next one."""
    ctx = zmq.Context.instance()
    rep = ctx.socket(zmq.REP)
    rep.linger = 0
    port = rep.bind_to_random_port("tcp://127.0.0.1")
    req = Requester(f"tcp://127.0.0.1:{port}", timeout=0.2)
    try:
        with pytest.raises(ProxyUnreachable):
            req.request({"op": "first"})
        assert rep.poll(2000)
        rep.recv()
        rep.send(b'{"ok": true, "which": "first"}')  # too late: its socket is gone
        done: dict[str, Any] = {}

        def answer() -> None:
            assert rep.poll(2000)
            done["req"] = json.loads(rep.recv())
            rep.send(b'{"ok": true, "which": "second"}')

        t = threading.Thread(target=answer)
        t.start()
        reply = req.request({"op": "second"}, timeout=2)
        t.join(3)
        assert reply["which"] == "second" and done["req"]["op"] == "second"
    finally:
        req.close()
        rep.close(0)


def test_register_heartbeat_stats_disconnect(proxy: Proxy) -> None:
    stats = {"sent": 0}
    client = NodeClient(
        proxy.control,
        role="recorder",
        name="n1",
        stats=lambda: dict(stats),
        registration=lambda: {"streams": [{"name": "n1", "rate": 8000, "channels": 1}]},
    ).start()
    try:
        assert client.wait_registered(3)
        assert client.endpoints is not None and client.endpoints.pub == proxy.pub
        stats["sent"] = 42
        node = wait_until(
            lambda: next(
                (n for n in proxy.registry.nodes.values() if n.stats.get("sent") == 42), None
            ),
            3,
            "heartbeat carrying stats",
        )
        assert node.name == "n1" and node.streams[0].name == "n1"
    finally:
        client.close()
    assert proxy.registry.nodes == {}  # disconnect removed it at once


def test_clock_offset_corrects_a_skewed_clock(
    proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clock, "SKEW", 5.0)  # this node's clock is 5 s fast
    client = NodeClient(proxy.control, role="x", name="skewed").start()
    try:
        assert client.wait_registered(3)
        assert client.offset == pytest.approx(-5.0, abs=0.005)
        assert client.now() == pytest.approx(time.time(), abs=0.005)
    finally:
        client.close()


def test_reregisters_after_proxy_restart() -> None:
    """kill -9 the proxy, start it again on the same ports: the node comes back by itself."""
    with proxy_process() as (control, proc):
        port = control.rsplit(":", 1)[1]
        with Publisher("mic", rate=8000, proxy=control) as pub:
            assert pub.client.wait_registered(5)
            first_id = pub.client.id
            proc.send_signal(signal.SIGKILL)
            proc.wait(5)
            # the data path keeps going while the proxy is down: blocks are held, counted
            wait_until(lambda: not pub.send(np.zeros(80, np.float32)), 5, "outlet to notice")
            held = pub.stats()["queued"]
            assert held >= 1 and pub.counters["dropped"] == 0
            with spawn("proxy", "--port", port) as proc2:
                node = wait_node(control, "mic", timeout=10)
                assert node["id"] != first_id and pub.client.registrations == 2
                with Listener(control, "mic") as listener:
                    # in effect at the proxy; the proxy's XSUB passes it on to the publisher
                    # over TCP, so wait until it is there too (else the held blocks can go
                    # out before any subscription reached the publisher: seen under load)
                    assert pub.outlet.wait_for(pub.stream.topic, 5)
                    wait_until(lambda: pub.send(np.ones(80, np.float32)), 5, "bus ready again")
                    # what was held during the outage arrives first, then the new block
                    got = listener.collect(held + 1)
                    assert [np.all(b == 0) for _, b in got[:held]] == [True] * held
                    h, block = got[held]
                    assert h.stream == "mic" and np.all(block == 1)
                assert stop(proc2) == 0


def _held(control: str) -> tuple[list[Any], list[Any]]:
    """What the registry holds, without what a new registration changes (id, times)."""
    reply = listing(control)
    nodes = [
        {k: v for k, v in n.items() if k not in ("id", "since", "last_seen")}
        for n in reply["nodes"]
    ]
    streams = [{k: v for k, v in s.items() if k != "node"} for s in reply["streams"]]
    return nodes, streams


def test_reregistration_after_proxy_restart_holds_exactly_what_it_held() -> None:
    """A stream announced with update() after registering is still listed after a restart.

    (It used to be lost for good: the node registered again with its outputs only.)
    """
    with proxy_process() as (control, proc):
        port = control.rsplit(":", 1)[1]
        client = NodeClient(
            control,
            role="processor",
            name="proc",
            registration=lambda: {"topics": ["audio/mic\x00"], "outputs": ["proc-out"]},
            stats=lambda: {"published": 7},
            timeout=0.3,
        ).start()
        try:
            assert client.wait_registered(5)
            client.update(streams=[{"name": "proc-out", "rate": 16000, "channels": 2}])
            before = wait_until(
                lambda: (h := _held(control))[1] and h[0][0]["stats"] and h, 5, "announcement"
            )
            assert [{k: s[k] for k in ("name", "rate", "channels")} for s in before[1]] == [
                {"name": "proc-out", "rate": 16000, "channels": 2}
            ]
            proc.send_signal(signal.SIGKILL)
            proc.wait(5)
            with spawn("proxy", "--port", port) as proc2:
                wait_until(lambda: client.registrations == 2, 10, "registration again")
                after = _held(control)  # one registration, nothing else needed
                assert after == before
                assert stop(proc2) == 0
        finally:
            client.close()


def test_ls_table_and_json(proxy: Proxy) -> None:
    with Publisher("lsmic", rate=16000, channels=2, proxy=proxy.control) as pub:
        pub.send(np.zeros((160, 2), np.float32))
        pub.client.update()  # heartbeat now, carrying the counters
        wait_until(
            lambda: any(n.stats.get("sent") == 1 for n in proxy.registry.nodes.values()),
            3,
            "stats",
        )
        table = run("ls", "--proxy", proxy.control)
        data = run("ls", "--json", "--proxy", proxy.control)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith(f"proxy {proxy.control} (zaudio ")
    assert lines[2].split()[:4] == ["ROLE", "NAME", "ID", "HOST"]
    assert "recorder" in lines[3] and "lsmic" in lines[3]
    assert any(line.split()[:3] == ["lsmic", "16000", "2"] for line in lines)
    listing = json.loads(data.stdout)
    assert listing["nodes"][0]["stats"]["sent"] == 1
    assert listing["streams"][0] == {
        "name": "lsmic",
        "rate": 16000,
        "channels": 2,
        "node": listing["nodes"][0]["id"],
        "origin": proxy.name,  # the proxy it is registered at (federation's extension)
        "via": "",
    }


def test_ls_without_proxy_is_one_line_exit_1() -> None:
    port = free_ports(1)
    r = run("ls", "--proxy", f"tcp://127.0.0.1:{port}", "--timeout", "0.3")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "no reply" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["nosuchcommand"], "No such command"),
        (["ls", "--bogus"], "No such option"),
        (["ls", "--proxy", "tcp://"], "invalid proxy address"),
        (["proxy", "--port", "70000"], "--port"),
    ],
)
def test_bad_usage_exit_2_one_line(args: list[str], needle: str) -> None:
    r = run(*args, timeout=15)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and needle in r.stderr and "Traceback" not in r.stderr


NO_PORT = ["tcp://127.0.0.1", "tcp://h:abc", ":99999", "h:99999", "tcp://h:0"]


def _takes_proxy() -> dict[str, list[str]]:
    """Every zaudio command with a --proxy option (a new one is covered by itself).

    Each with a placeholder for its required arguments: the address must be
    refused while the options are parsed, before any of them is used.
    """
    import click
    from zaudio.cli.main import COMMANDS, cli

    ctx = click.Context(cli)
    found = {}
    for name in sorted(COMMANDS):
        command = cli.get_command(ctx, name)
        if command is not None and any("--proxy" in p.opts for p in command.params):
            required = [p for p in command.params if isinstance(p, click.Argument) and p.required]
            found[name] = [name, *("x" for _ in required)]
    return found


TAKES_PROXY = _takes_proxy()


def test_the_commands_that_take_proxy() -> None:
    assert {"ls", "process", "record", "web"} <= set(TAKES_PROXY)


@pytest.mark.parametrize("command", TAKES_PROXY)
@pytest.mark.parametrize("address", NO_PORT)
def test_proxy_address_without_valid_port_exit_2_one_line(command: str, address: str) -> None:
    """Every command that takes --proxy refuses it at parsing (it used to hang or trace)."""
    r = run(*TAKES_PROXY[command], "--proxy", address, timeout=15)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert f"invalid proxy address {address!r}" in r.stderr and "tcp://HOST:PORT" in r.stderr


@pytest.mark.parametrize("command", TAKES_PROXY)
def test_zaudio_proxy_env_is_checked_too(command: str) -> None:
    r = run(*TAKES_PROXY[command], env=env(ZAUDIO_PROXY="tcp://127.0.0.1"), timeout=15)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "invalid proxy address" in r.stderr


@pytest.mark.parametrize("address", NO_PORT)
def test_library_refuses_address_without_port(address: str) -> None:
    with pytest.raises(ConfigError, match="invalid proxy address"):
        NodeClient(address, role="recorder", name="x")
    with pytest.raises(ConfigError, match="invalid proxy address"):
        Requester(address)


def test_version_and_module_entry() -> None:
    from zaudio import __version__

    r = run("--version")
    assert r.returncode == 0 and __version__ in r.stdout
    assert run("--help").stdout.count("proxy") >= 1


def test_ls_shows_what_processors_read_and_publish() -> None:
    from zaudio.cli.ls import render

    node = {
        "role": "processor", "name": "p", "id": "x", "host": "h", "pid": 1, "since": 0,
        "topics": ["audio/mic\x00", "audio/lab-a/", "audio/", "result/vad\x00"],
        "streams": [{"name": "clean", "rate": 8000, "channels": 1}],
        "stats": {"received": 3},
    }  # fmt: skip
    row = render({"nodes": [node], "streams": []}, now=5).splitlines()[1]
    assert "mic,lab-a/*,*,result/vad -> clean" in row


def test_ls_shows_unconvertible_and_clipped_only_when_not_zero() -> None:
    from zaudio.cli.ls import render

    def node(name: str, **stats: int) -> dict[str, Any]:
        return {"role": "processor", "name": name, "id": name, "host": "h", "pid": 1,
                "since": 0, "topics": ["audio/mic\x00"], "stats": {"received": 9, **stats}}  # fmt: skip

    quiet = render({"nodes": [node("a", unconvertible=0, clipped=0)], "streams": []}, now=5)
    assert "UNCONVERTIBLE" not in quiet and "CLIPPED" not in quiet, quiet
    lines = render(
        {
            "nodes": [node("a", unconvertible=0), node("b", unconvertible=5, clipped=7)],
            "streams": [],
        },
        now=5,
    ).splitlines()
    head = lines[0].split()
    rows = {line.split()[1]: line.split() for line in lines[1:]}
    assert rows["b"][head.index("UNCONVERTIBLE")] == "5" and rows["b"][head.index("CLIPPED")] == "7"
    assert rows["a"][head.index("UNCONVERTIBLE")] == "0" and rows["a"][head.index("CLIPPED")] == "-"


def test_ls_sent_shows_what_a_processor_published() -> None:
    """A processor counts what it sent as ``published``: SENT shows it (it showed ``-``)."""
    from zaudio.cli.ls import render

    nodes = [
        {"role": "processor", "name": "p", "id": "a", "host": "h", "pid": 1, "since": 0,
         "topics": ["audio/mic\x00"], "stats": {"received": 1201, "published": 1201}},
        {"role": "recorder", "name": "mic", "id": "b", "host": "h", "pid": 2, "since": 0,
         "streams": [{"name": "mic", "rate": 8000, "channels": 1}], "stats": {"sent": 1300}},
    ]  # fmt: skip
    lines = render({"nodes": nodes, "streams": []}, now=5).splitlines()
    head = lines[0].split()
    sent = head.index("SENT")
    rows = {line.split()[1]: line.split() for line in lines[1:]}
    assert rows["p"][sent] == "1201" and rows["mic"][sent] == "1300"
