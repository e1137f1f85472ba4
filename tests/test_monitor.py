"""What the monitor page is told about nodes: the same summary as ``zaudio ls``."""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np

from tests.helpers import proxy_process, spawn, wait_node, wait_until
from zaudio.bus import Publisher
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
