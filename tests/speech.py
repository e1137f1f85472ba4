"""A labelled speech corpus made here (espeak-ng speech, sox silence and pink noise), and
frame-level scoring of a VAD processor on it.

The corpus is utterances of espeak-ng (several voices and speeds) between stretches of
sox silence, as 48 kHz stereo float32 (sox converts), so a VAD that wants 16 kHz mono
goes through the format adaptation. Labels are per sample: speech from the first to the
last active 10 ms frame of each utterance (active: within 45 dB of the utterance's
loudest frame), with pauses under 300 ms bridged, as a VAD with that ``min_silence``
reports them.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from zaudio.adapt import adapted
from zaudio.protocol import AudioHeader
from zaudio.runtime import Processor

RATE = 48000
FRAME = 480  # 10 ms: the unit of the frame-level score

UTTERANCES = [
    ("en", 160, "The quick brown fox jumps over the lazy dog."),
    ("en-us", 140, "Please call Stella and ask her to bring these things with her from the store."),
    ("en+f3", 175, "Six spoons of fresh snow peas, five thick slabs of blue cheese."),
    ("en-gb", 150, "We also need a small plastic snake and a big toy frog for the kids."),
    ("en+m3", 130, "She can scoop these things into three red bags."),
    ("en-us+f2", 185, "And we will go meet her Wednesday at the train station."),
    ("en", 120, "Numbers: one, two, three, four, five."),
    ("en+f4", 165, "Is it raining in the city tonight, or is the sky clear?"),
]
SILENCES = [1.5, 1.2, 2.0, 1.0, 1.6, 1.3, 1.8, 1.1, 1.5]  # seconds, before, between, after


def _sox(*args: str) -> None:
    """Run sox (``-R``: repeatable, so the noise is the same on every run)."""
    subprocess.run(["sox", *args], check=True, capture_output=True, timeout=60)


def make_corpus(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(audio, labels)``: 48 kHz stereo float32 and one bool per frame (speech)."""
    parts: list[np.ndarray] = []
    labels: list[np.ndarray] = []

    def silence(seconds: float, k: int) -> None:
        path = folder / f"silence{k}.wav"
        _sox("-n", "-r", str(RATE), "-c", "2", "-e", "float", "-b", "32", str(path),
             "trim", "0", f"{seconds}")  # fmt: skip
        x, _ = sf.read(path, dtype="float32", always_2d=True)
        parts.append(x)
        labels.append(np.zeros(x.shape[0], bool))

    for k, (voice, speed, text) in enumerate(UTTERANCES):
        silence(SILENCES[k], k)
        raw, wav = folder / f"u{k}-raw.wav", folder / f"u{k}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text],
                       check=True, capture_output=True, timeout=60)  # fmt: skip
        _sox(str(raw), "-r", str(RATE), "-c", "2", "-e", "float", "-b", "32", str(wav),
             "norm", "-6")  # fmt: skip
        x, _ = sf.read(wav, dtype="float32", always_2d=True)
        parts.append(x)
        labels.append(_speech(x[:, 0]))
    silence(SILENCES[len(UTTERANCES)], len(UTTERANCES))
    return np.concatenate(parts), np.concatenate(labels)


def _speech(x: np.ndarray) -> np.ndarray:
    """Per-sample speech labels of one clean utterance."""
    n = x.shape[0] // FRAME
    power = (x[: n * FRAME].astype(np.float64).reshape(n, FRAME) ** 2).mean(axis=1)
    active = power > power.max() * 10 ** (-45 / 10)
    idx = np.flatnonzero(active)
    frames = np.zeros(n, bool)
    if idx.size:
        frames[idx[0] : idx[-1] + 1] = True
        bridge = 30  # 300 ms
        for a, b in zip(idx[:-1], idx[1:], strict=True):
            if b - a > bridge:
                frames[a + 1 : b] = False
    out = np.zeros(x.shape[0], bool)
    out[: n * FRAME] = np.repeat(frames, FRAME)
    return out


def noisy(audio: np.ndarray, labels: np.ndarray, folder: Path, snr_db: float) -> np.ndarray:
    """``audio`` with sox pink noise (the same on every run) at ``snr_db``: the speech's
    power (over its labelled frames) over the noise's."""
    path = folder / "pinknoise.wav"
    if not path.exists():
        seconds = audio.shape[0] / RATE + 1
        _sox("-R", "-n", "-r", str(RATE), "-c", "2", "-e", "float", "-b", "32", str(path),
             "synth", f"{seconds}", "pinknoise", "vol", "0.5")  # fmt: skip
    noise, _ = sf.read(path, dtype="float32", always_2d=True)
    noise = noise[: audio.shape[0]].astype(np.float64)
    speech_power = float((audio[labels].astype(np.float64) ** 2).mean())
    gain = np.sqrt(speech_power / 10 ** (snr_db / 10) / float((noise**2).mean()))
    return (audio + gain * noise).astype(np.float32)


def run_vad(target: str, audio: np.ndarray, block: int = 480, **params: Any) -> dict[str, Any]:
    """Run the processor ``target`` over ``audio`` (48 kHz) as the runtime would:
    converted to its ``input_format`` by its own :class:`~zaudio.Processor`'s adapter,
    block by block. Returns the speech mask (per 48 kHz sample) and the CPU time."""
    proc = Processor(target, params=params)
    loaded, adapter = proc.loaded, proc.adapter
    changes: list[tuple[str, int, int]] = []  # (change, index, rate)
    results: list[Any] = []
    cpu = 0.0
    set_up = False
    for k in range(0, audio.shape[0], block):
        x = audio[k : k + block]
        h = AudioHeader(1, "mic", "s", k // block, k, k / RATE, RATE, 2, x.shape[0], "float32")
        items = adapted(adapter, None, h, x, False, False) if adapter else [(x, h)]
        for data, info in items:
            if not set_up and loaded.setup is not None:
                loaded.setup(info)
            set_up = True
            started = time.process_time()
            out = loaded.call(data, info)
            cpu += time.process_time() - started
            if out is not None:
                results.append(out)
            for c in (out or {}).get("changes", []):
                changes.append((c["change"], c["index"], info.rate))
    mask = np.zeros(audio.shape[0], bool)
    start: int | None = None
    for change, index, rate in changes:
        at = index * RATE // rate
        if change == "start":
            start = at
        elif start is not None:
            mask[start:at] = True
            start = None
    if start is not None:
        mask[start:] = True
    if loaded.close is not None:
        loaded.close()
    return {"mask": mask, "cpu": cpu, "rtf": cpu / (audio.shape[0] / RATE), "changes": changes,
            "results": results}  # fmt: skip


def frame_f1(mask: np.ndarray, labels: np.ndarray) -> float:
    """F1 of speech over 10 ms frames (a frame is speech if most of its samples are)."""
    n = labels.shape[0] // FRAME
    pred = mask[: n * FRAME].reshape(n, FRAME).mean(axis=1) > 0.5
    true = labels[: n * FRAME].reshape(n, FRAME).mean(axis=1) > 0.5
    tp = int(np.count_nonzero(pred & true))
    fp = int(np.count_nonzero(pred & ~true))
    fn = int(np.count_nonzero(~pred & true))
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0
