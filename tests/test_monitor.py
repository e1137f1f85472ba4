"""What the monitor page is told about nodes: the same summary as ``zaudio ls``."""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np

from tests.helpers import answers, proxy_process, spawn, stop, wait_node, wait_until
from zaudio.bus import Publisher
from zaudio.endpoints import free_ports
from zaudio.listing import node_summary, topic_label
from zaudio.web.monitor import Monitor


def test_topic_labels_and_node_summaries() -> None:
    assert [topic_label(t) for t in ("audio/mic\x00", "audio/lab-a/", "audio/", "result/")] == [
        "mic",
        "lab-a/*",
        "*",
        "result/*",
    ]
    recorder = {"streams": [{"name": "mic"}], "topics": []}
    reader = {"streams": [], "topics": ["audio/mic\x00"], "outputs": ["lvl"]}
    chained = {"streams": [{"name": "neg"}], "topics": ["audio/mic\x00"], "outputs": ["neg"]}
    assert node_summary(recorder) == "mic"
    assert node_summary(reader) == "mic"  # its reserved output name is not what it reads
    assert node_summary(chained) == "mic -> neg"
    assert node_summary({}) == "-"


def test_monitor_list_says_what_a_processor_reads_not_its_output() -> None:
    lists: list[dict[str, Any]] = []
    lock = threading.Lock()

    def emit(text: str) -> None:
        msg = json.loads(text)
        if msg["type"] == "list":
            with lock:
                lists.append(msg)

    def what(name: str) -> str | None:
        with lock:
            nodes = lists[-1]["nodes"] if lists and lists[-1]["ok"] else []
        return next((n["what"] for n in nodes if n["name"] == name), None)

    with (
        proxy_process("--heartbeat", "0.2") as (bus, _),
        spawn("process", "level", "--topic", "mic", "--name", "lvl", "--proxy", bus),
        spawn(
            "process", "tests.procs.basic:negate", "--topic", "mic", "--name", "neg", "--proxy", bus
        ),  # fmt: skip
    ):
        wait_node(bus, "lvl", role="processor")
        wait_node(bus, "neg", role="processor")
        monitor = Monitor(bus, emit, list_every=0.1).start()
        try:
            with Publisher("mic", rate=8000, proxy=bus) as mic:
                assert wait_until(lambda: what("mic") == "mic", 10, "the recorder's row")
                # negate publishes its arrays as stream "neg": it then shows "mic -> neg"
                wait_until(
                    lambda: mic.send(np.zeros((80, 1), np.float32)) and what("neg") == "mic -> neg",
                    10,
                    "the chained processor's row",
                )
                assert what("lvl") == "mic"
        finally:
            monitor.stop()


def test_monitor_opens_its_connection_again_where_a_restarted_proxy_moved_its_data() -> None:
    """Hello → connect → subscribe → confirm (zaudio.connection), again after an outage."""
    heard: set[str] = set()
    lock = threading.Lock()

    def emit(text: str) -> None:
        msg = json.loads(text)
        if msg["type"] == "levels":
            with lock:
                heard.update(msg["streams"])

    def hears(mic: Publisher, name: str) -> bool:
        mic.send(np.full((800, 1), 0.1, np.float32))
        with lock:
            return name in heard

    port = free_ports(5)
    bus = f"tcp://127.0.0.1:{port}"
    monitor = Monitor(bus, emit, list_every=0.1)
    try:
        with spawn("proxy", "--port", str(port)) as first:
            wait_until(lambda: answers(bus), 15, "the first proxy")
            monitor.start()
            with Publisher("before", rate=8000, proxy=bus) as mic:
                wait_until(lambda: hears(mic, "before"), 20, "levels through the first proxy")
            stop(first)
        # the same control port, the data ports moved: the monitor must ask again
        moved = ("--pub-port", str(port + 3), "--sub-port", str(port + 4))
        with spawn("proxy", "--port", str(port), *moved):
            wait_until(lambda: answers(bus), 15, "the second proxy")
            with Publisher("after", rate=8000, proxy=bus) as mic:
                wait_until(lambda: hears(mic, "after"), 20, "levels through the moved proxy")
        assert monitor.running and monitor.errors == 0
    finally:
        monitor.stop()
