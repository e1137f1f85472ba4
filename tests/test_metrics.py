"""``zaudio proxy --metrics``: real processes, real scrapes, promtool on what they return."""

from __future__ import annotations

import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import ROOT, env, listing, proxy_process, run, spawn, wait_node, wait_until
from zaudio.endpoints import free_ports

PROCS = "tests.procs.basic"
PROMTOOL = shutil.which("promtool") or "promtool"  # Debian's prometheus package
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as reply:
        text: str = reply.read().decode()
        return text


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def values(samples: Samples, metric: str, /, **labels: str) -> list[float]:
    """Every sample called ``metric`` whose labels include ``labels``."""
    want = set(labels.items())
    return [v for (n, ls), v in samples.items() if n == metric and want <= set(ls)]


def one(samples: Samples, metric: str, /, **labels: str) -> float | None:
    found = values(samples, metric, **labels)
    assert len(found) <= 1, f"{metric} {labels}: {found}"
    return found[0] if found else None


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def recorder_counting(url: str) -> str | None:
    """The scrape once it shows the recorder's stream counting and the fast processor's
    lag (a heartbeat after its first call: later than the recorder's first one under
    load), else None."""
    samples = parse(text := scrape_text(url))
    sent = one(samples, "zaudio_publisher_sent_blocks_total", stream="tone")
    lag = one(samples, "zaudio_processor_lag_seconds", name="fast")
    return text if sent and lag is not None else None


def test_scrape_while_a_recorder_a_fast_and_a_slow_processor_run() -> None:
    port = free_ports(1)
    url = f"http://127.0.0.1:{port}/metrics"
    metrics = ("--heartbeat", "0.2", "--metrics", f"127.0.0.1:{port}")
    with proxy_process(*metrics) as (control, _proxy):
        tone = ("--topic", "tone")
        with (
            spawn("process", f"{PROCS}:count", "--name", "fast", *tone, "--proxy", control),
            spawn("process", f"{PROCS}:slow", "--name", "slow", *tone, "--queue", "4",
                  "--proxy", control),
        ):  # fmt: skip
            wait_node(control, "fast", role="processor")
            wait_node(control, "slow", role="processor")
            rec_args = ("--source", "sine:440", "--stream", "tone", "--rate", "8000")
            with spawn("record", *rec_args, "--duration", "1.5s", "--proxy", control) as rec:
                # while the recorder runs, all three kinds are exported, and promtool likes it
                live = wait_until(lambda: recorder_counting(url), 15, "the recorder in /metrics")
                checked = promtool("check", "metrics", stdin=live)
                assert checked.returncode == 0, checked.stdout + checked.stderr
                s = parse(live)
                assert one(s, "zaudio_nodes", role="recorder") == 1
                assert one(s, "zaudio_nodes", role="processor") == 2
                assert one(s, "zaudio_stream_rate_hertz", stream="tone") == 8000
                assert one(s, "zaudio_stream_channels", stream="tone") == 1
                assert one(s, "zaudio_publisher_buffered_blocks", stream="tone") is not None
                assert one(s, "zaudio_publisher_dropped_blocks_total", stream="tone") == 0
                assert one(s, "zaudio_processor_lag_seconds", name="fast") is not None
                assert rec.wait(20) == 0
                assert rec.stderr is not None
                log = rec.stderr.read()
            sent = int(re.findall(r"stream 'tone': sent (\d+) blocks", log)[-1])
            assert sent >= 140, log  # 1.5 s of 10 ms blocks

            def settled() -> Samples | None:
                s = parse(scrape_text(url))
                fast = one(s, "zaudio_processor_received_blocks_total", name="fast")
                slow = {
                    k: one(s, f"zaudio_processor_{k}", name="slow")
                    for k in ("received_blocks_total", "processed_blocks_total",
                              "dropped_blocks_total", "queued_blocks")
                }  # fmt: skip
                done = (
                    fast == sent
                    and slow["received_blocks_total"] == sent
                    and slow["queued_blocks"] == 0
                    and slow["processed_blocks_total"] + slow["dropped_blocks_total"] == sent  # type: ignore[operator]
                )
                return s if done else None

            s = wait_until(settled, 30, "both processors to account for every block")
            heartbeat = {n["name"]: n["stats"] for n in listing(control)["nodes"]}
            ls = run("ls", "--proxy", control)
            again = parse(scrape_text(url))

    # the slow one dropped, and its counter is exactly what its heartbeat says
    dropped = one(s, "zaudio_processor_dropped_blocks_total", name="slow")
    assert dropped is not None and dropped > 0
    assert dropped == heartbeat["slow"]["dropped"]
    assert (
        one(s, "zaudio_processor_processed_blocks_total", name="slow")
        == (heartbeat["slow"]["processed"])
    )
    assert one(s, "zaudio_processor_gaps_total", name="slow") == 0  # its own drops are no gaps
    # the fast one received what was published, and dropped nothing
    assert one(s, "zaudio_processor_received_blocks_total", name="fast") == sent
    assert one(s, "zaudio_processor_dropped_blocks_total", name="fast") == 0
    assert one(s, "zaudio_processor_errors_total", name="fast") == 0
    rtf = one(s, "zaudio_processor_realtime_factor", name="slow")
    assert rtf is not None and rtf > 1  # 30 ms per 10 ms block
    # the recorder left: its series are gone from the next scrape
    assert values(s, "zaudio_publisher_sent_blocks_total") == []
    assert one(s, "zaudio_nodes", role="recorder") == 0
    assert values(s, "zaudio_stream_rate_hertz", stream="tone") == []
    # the forwarder's own counters: every block came in once and went out once
    # (to both subscribers in one send), plus the processors' results
    unit = "messages" if values(s, "zaudio_proxy_messages_total") else "frames"
    parts = 1 if unit == "messages" else 3  # every data message is three frames
    got_in = one(s, f"zaudio_proxy_{unit}_total", socket="publish_in", direction="received")
    got_out = one(s, f"zaudio_proxy_{unit}_total", socket="subscribe_out", direction="sent")
    assert got_in is not None and got_in >= sent * parts
    assert got_out is not None and got_out >= sent * parts
    bytes_in = one(s, "zaudio_proxy_bytes_total", socket="publish_in", direction="received")
    assert bytes_in is not None and bytes_in >= sent * 80 * 4  # 80 float32 frames a block
    subs = one(s, f"zaudio_proxy_{unit}_total", socket="subscribe_out", direction="received")
    assert subs is not None and subs > 0  # subscriptions from the processors
    # zaudio ls shows the same forwarder counters on its proxy line (nothing moved since)
    assert ls.returncode == 0, ls.stderr
    moved = one(again, f"zaudio_proxy_{unit}_total", socket="publish_in", direction="received")
    assert moved == got_in
    proxy_line = ls.stdout.splitlines()[0]
    assert f"forwarded {got_in:.0f} {unit} (" in proxy_line, proxy_line


def test_bad_metrics_address_is_one_line_exit_2() -> None:
    res = run("proxy", "--port", "0", "--metrics", "localhost:http")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "Error: invalid --metrics 'localhost:http': use HOST:PORT, e.g. 127.0.0.1:9105"
    ]


def test_metrics_port_in_use_is_one_line() -> None:
    port = free_ports(1)
    with proxy_process("--metrics", f"127.0.0.1:{port}"):
        res = run("proxy", "--port", str(free_ports(3)), "--metrics", f"127.0.0.1:{port}")
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"Error: cannot serve metrics on 127.0.0.1:{port}"
    )


def test_without_the_extra_metrics_is_one_line_naming_it(tmp_path: Path) -> None:
    # a prometheus_client that cannot be imported, found first on the path
    fake = tmp_path / "prometheus_client"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "raise ImportError(\"No module named 'prometheus_client'\", name='prometheus_client')\n"
    )
    res = run("proxy", "--port", "0", "--metrics", "127.0.0.1:0", env=env(PYTHONPATH=str(tmp_path)))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "Error: zaudio proxy --metrics needs the 'metrics' extra "
        "(prometheus_client is not installed): pip install 'zaudio[metrics]'"
    ]


def test_proxy_help_mentions_metrics() -> None:
    res = run("proxy", "--help")
    assert "--metrics HOST:PORT" in res.stdout


@pytest.fixture
def rules_dir() -> Path:
    return ROOT / "docker" / "prometheus"


def test_alert_rules_pass_promtool_check(rules_dir: Path) -> None:
    res = promtool("check", "rules", str(rules_dir / "alerts.yml"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 3 rules found" in res.stdout


def test_alert_rules_fire_on_the_series_they_watch(rules_dir: Path) -> None:
    # promtool's rule unit tests feed series through the rules and check which alerts fire
    res = subprocess.run(
        [PROMTOOL, "test", "rules", "alerts.test.yml"],
        cwd=rules_dir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


def test_prometheus_config_passes_promtool(rules_dir: Path) -> None:
    res = promtool("check", "config", str(rules_dir / "prometheus.yml"))
    assert res.returncode == 0, res.stdout + res.stderr


def test_compose_overlay_scrapes_the_proxy(rules_dir: Path) -> None:
    """The overlay merges; Prometheus scrapes the port the proxy serves; the proxy reads it.

    (No Prometheus image can be pulled here: the server itself is checked with
    promtool, and the proxy service is run as a local process with the overlay's
    environment, only moved to loopback.)
    """
    import yaml

    res = subprocess.run(
        ["docker-compose", "-f", "docker/compose.yaml", "-f", "docker/compose.metrics.yaml",
         "config"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    services = yaml.safe_load(res.stdout)["services"]
    address = services["proxy"]["environment"]["ZAUDIO_PROXY_METRICS"]
    host, _, port = address.rpartition(":")
    assert host == "0.0.0.0"
    prom = services["prometheus"]
    assert set(prom["networks"]) >= {"bus"}  # the proxy's internal network
    mounts = [str(v).split(":")[:2] for v in prom["volumes"]]
    assert [str(rules_dir / "prometheus.yml"), "/etc/prometheus/prometheus.yml"] in mounts
    assert [str(rules_dir / "alerts.yml"), "/etc/prometheus/alerts.yml"] in mounts
    scrape = yaml.safe_load((rules_dir / "prometheus.yml").read_text())
    targets = scrape["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == [f"proxy:{port}"]
    assert scrape["rule_files"] == ["alerts.yml"]
    # the proxy service takes --metrics from the environment the overlay sets
    free = free_ports(1)
    with proxy_process(env=env(ZAUDIO_PROXY_METRICS=f"127.0.0.1:{free}")):
        text = scrape_text(f"http://127.0.0.1:{free}/metrics")
    assert one(parse(text), "zaudio_nodes", role="recorder") == 0


def test_docs_list_every_metric() -> None:
    from zaudio.metrics import families
    from zaudio.proxy import Proxy

    doc = (ROOT / "docs" / "operations.md").read_text()
    with Proxy(port=0) as proxy:
        names = [f.name + ("_total" if f.kind == "counter" else "") for f in families(proxy)]
    assert len(names) > 30
    # the forwarder's count is named after its unit: the doc names both
    either = ("zaudio_proxy_frames_total", "zaudio_proxy_messages_total")
    missing = [n for n in names if f"`{n}`" not in doc and n not in either]
    assert missing == []
    assert "`zaudio_proxy_info`" in doc
    assert "`zaudio_proxy_frames_total` (or `_messages_total`)" in doc


def test_nan_samples_are_counted_per_input_stream() -> None:
    import numpy as np

    from zaudio.publisher import Publisher

    port = free_ports(1)
    url = f"http://127.0.0.1:{port}/metrics"
    with proxy_process("--heartbeat", "0.2", "--metrics", f"127.0.0.1:{port}") as (control, _p):
        with spawn("process", f"{PROCS}:count", "--name", "nan", "--topic", "dirty",
                   "--proxy", control):  # fmt: skip
            wait_node(control, "nan", role="processor")
            with Publisher("dirty", rate=1000, channels=2, proxy=control) as pub:
                block = np.zeros((10, 2), np.float32)
                block[3, 1] = np.nan
                block[7, 0] = np.inf
                for _ in range(20):  # two of the runtime's batches of ten
                    pub.send(block)

                def counted() -> float | None:
                    s = parse(scrape_text(url))
                    return one(s, "zaudio_processor_nonfinite_samples_total", stream="dirty")

                assert wait_until(lambda: counted() == 40, 10, "40 non-finite samples")


def test_a_killed_node_stops_being_exported_after_its_missed_heartbeats() -> None:
    import signal

    port = free_ports(1)
    url = f"http://127.0.0.1:{port}/metrics"
    with proxy_process("--heartbeat", "0.2", "--metrics", f"127.0.0.1:{port}") as (control, _p):
        with spawn("process", f"{PROCS}:count", "--name", "doomed", "--proxy", control) as proc:
            wait_node(control, "doomed", role="processor")
            wait_until(
                lambda: one(parse(scrape_text(url)), "zaudio_nodes", role="processor") == 1,
                10,
                "the processor in /metrics",
            )
            proc.send_signal(signal.SIGKILL)  # no disconnect: only its heartbeats stop
            proc.wait(10)

            def without_it() -> Samples | None:
                s = parse(scrape_text(url))
                return s if one(s, "zaudio_nodes", role="processor") == 0 else None

            # gone once it missed three heartbeats (0.6 s)
            s = wait_until(without_it, 10, "the killed processor to leave /metrics")
    assert values(s, "zaudio_processor_received_blocks_total", name="doomed") == []
    assert values(s, "zaudio_node_start_time_seconds", name="doomed") == []


def test_per_stream_series_of_a_slow_processor_on_two_block_rates() -> None:
    port = free_ports(1)
    url = f"http://127.0.0.1:{port}/metrics"
    blocks = {"quick": "10ms", "coarse": "40ms"}  # 100 and 25 blocks a second
    with proxy_process("--heartbeat", "0.2", "--metrics", f"127.0.0.1:{port}") as (control, _p):
        topics = [a for stream in blocks for a in ("--topic", stream)]
        with (
            spawn("process", f"{PROCS}:slow", "--name", "slow", *topics, "--queue", "4",
                  "--proxy", control),
            spawn("process", f"{PROCS}:boom", "--name", "boom", *topics, "--proxy", control),
        ):  # fmt: skip
            wait_node(control, "slow", role="processor")
            wait_node(control, "boom", role="processor")
            source = ("--source", "sine:440", "--rate", "8000", "--duration", "1.5s")
            with (
                spawn("record", *source, "--stream", "quick", "--block", blocks["quick"],
                      "--proxy", control) as quick,
                spawn("record", *source, "--stream", "coarse", "--block", blocks["coarse"],
                      "--proxy", control) as coarse,
            ):  # fmt: skip
                logs = {}
                for stream, rec in (("quick", quick), ("coarse", coarse)):
                    assert rec.wait(20) == 0
                    assert rec.stderr is not None
                    logs[stream] = rec.stderr.read()
            sent = {}
            for stream, log in logs.items():
                found = re.findall(rf"stream '{stream}': sent (\d+) blocks", log)
                assert found, log
                sent[stream] = int(found[-1])
            assert sent["quick"] >= 140 and sent["coarse"] >= 35, sent

            def settled() -> tuple[str, Samples] | None:
                s = parse(text := scrape_text(url))
                per = {
                    k: {st: one(s, f"zaudio_processor_stream_{k}_total", name="slow", stream=st)
                        for st in blocks}
                    for k in ("received_blocks", "processed_blocks", "dropped_blocks")
                }  # fmt: skip
                errors = [
                    one(s, "zaudio_processor_stream_errors_total", name="boom", stream=st)
                    == sent[st] // 2  # it raises on every odd seq
                    for st in blocks
                ]
                done = (
                    all(errors)
                    and one(s, "zaudio_processor_queued_blocks", name="slow") == 0
                    and all(
                        per["received_blocks"][st] == sent[st]
                        and per["processed_blocks"][st] is not None
                        and per["dropped_blocks"][st] is not None
                        and per["processed_blocks"][st] + per["dropped_blocks"][st] == sent[st]  # type: ignore[operator]
                        for st in blocks
                    )
                )
                return (text, s) if done else None

            text, s = wait_until(settled, 30, "each stream's blocks accounted for")
            beats = {n["name"]: n["stats"] for n in listing(control)["nodes"]}
            heartbeat = beats["slow"]
    checked = promtool("check", "metrics", stdin=text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # the per-stream series sum to the totals, which stay what the heartbeat says
    for key in ("received_blocks", "processed_blocks", "dropped_blocks", "gaps", "lost_frames"):
        total = one(s, f"zaudio_processor_{key}_total", name="slow")
        per = values(s, f"zaudio_processor_stream_{key}_total", name="slow")
        assert len(per) == 2 and sum(per) == total, (key, per, total)
    dropped = one(s, "zaudio_processor_dropped_blocks_total", name="slow")
    assert dropped == heartbeat["dropped"] and dropped is not None and dropped > 0
    assert heartbeat["streams"]["quick"]["received"] == sent["quick"]
    assert heartbeat["streams"]["coarse"]["received"] == sent["coarse"]
    assert one(s, "zaudio_processor_stream_gaps_total", name="slow", stream="quick") == 0
    # a failing call is counted on its stream: the per-stream failures sum to the total
    assert (
        sum(values(s, "zaudio_processor_stream_errors_total", name="boom"))
        == (beats["boom"]["failed"])
    )
    assert values(s, "zaudio_processor_stream_errors_total", name="slow") == [0, 0]
