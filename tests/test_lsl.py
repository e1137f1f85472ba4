"""The LSL bridge both ways, with a real pylsl outlet and inlet on this machine
(discovery kept to this machine by an LSLAPICFG file)."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers import ROOT, Listener, env, proxy_process, spawn, wait_node

_CFG = Path(tempfile.mkdtemp(prefix="zaudio-lsl-")) / "lsl_api.cfg"
_CFG.write_text("[multicast]\nResolveScope = machine\n[ports]\nIPv6 = disable\n[log]\nlevel = -2\n")
os.environ["LSLAPICFG"] = str(_CFG)  # before liblsl starts in this process

import pylsl  # noqa: E402

from zaudio.publisher import Publisher  # noqa: E402

RATE = 1000
FRAMES = 50


def _env() -> dict[str, str]:
    return env(LSLAPICFG=str(_CFG))


def _block(i: int, channels: int = 2) -> np.ndarray[Any, Any]:
    return np.random.default_rng(i).uniform(-1, 1, (FRAMES, channels)).astype(np.float32)


@pytest.fixture
def control() -> Iterator[str]:
    with proxy_process() as (ctl, _):
        yield ctl


def test_lsl_out_pushes_exact_samples_stamped_from_t(control: str) -> None:
    name = f"zaudio-test-{os.getpid()}-out"
    with spawn("bridge", "lsl-out", name, "--topic", "mic", "--proxy", control, env=_env()):
        wait_node(control, "lsl-out", role="subscriber")
        with Publisher("mic", rate=RATE, channels=2, proxy=control) as pub:
            base = time.time()
            t = [base + i * FRAMES / RATE for i in range(41)]
            assert pub.send(_block(0), t[0])  # the outlet is made on the first block
            found = pylsl.resolve_byprop("name", name, 1, 10.0)
            assert found, "the bridge's LSL outlet was not found"
            info = found[0]
            assert (info.channel_count(), info.nominal_srate(), info.type()) == (2, RATE, "Audio")
            inlet = pylsl.StreamInlet(info)
            inlet.open_stream(10.0)
            correction = inlet.time_correction(5.0)
            for i in range(1, 41):
                assert pub.send(_block(i), t[i])
            samples: list[Any] = []
            stamps: list[float] = []
            deadline = time.monotonic() + 15
            while len(samples) < 40 * FRAMES and time.monotonic() < deadline:
                got, ts = inlet.pull_chunk(timeout=0.5, max_samples=1000)
                samples += got
                stamps += ts
            inlet.close_stream()
    received = np.asarray(samples, np.float32)
    n = len(received)
    assert n in (40 * FRAMES, 41 * FRAMES), n  # block 0 may have reached us too
    first = 41 - n // FRAMES
    sent = np.concatenate([_block(i) for i in range(first, 41)])
    assert np.array_equal(received, sent)  # exact samples
    expected = np.concatenate([t[i] + np.arange(FRAMES) / RATE for i in range(first, 41)])
    lsl_minus_unix = pylsl.local_clock() - time.time()
    assert np.max(np.abs(np.asarray(stamps) + correction - (expected + lsl_minus_unix))) < 1e-3


def _int_block(i: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng(i).integers(-32768, 32768, (FRAMES, 3)).astype(np.float32)


@pytest.mark.parametrize("fmt", ["float32", "int16"])
def test_lsl_in_publishes_exact_samples_with_t_from_lsl(control: str, fmt: str) -> None:
    """float32 samples arrive bit for bit; int16 ones as the same values in float32."""
    name = f"zaudio-test-{os.getpid()}-in-{fmt}"
    cf = pylsl.cf_float32 if fmt == "float32" else pylsl.cf_int16
    make = (lambda i: _block(i, 3)) if fmt == "float32" else _int_block
    info = pylsl.StreamInfo(name, "EEG", 3, RATE, cf, f"src-{name}")
    outlet = pylsl.StreamOutlet(info)
    with Listener(control, "fromlsl") as listener:
        with spawn("bridge", "lsl-in", name, "--stream", "fromlsl", "--proxy", control,
                   env=_env()):  # fmt: skip
            wait_node(control, "lsl-in", role="recorder")
            assert outlet.wait_for_consumers(10.0)
            now = pylsl.local_clock()
            lsl_t = [now + i * FRAMES / RATE for i in range(20)]
            for i in range(20):
                outlet.push_chunk(make(i), lsl_t[i] + (FRAMES - 1) / RATE)
            got = []
            total = 0
            while total < 20 * FRAMES:
                h, block = listener.recv(10)
                got.append((h, np.array(block)))
                total += h.frames
    unix_minus_lsl = time.time() - pylsl.local_clock()
    assert np.array_equal(np.concatenate([b for _h, b in got]), np.concatenate(
        [make(i) for i in range(20)]))  # fmt: skip
    index = 0
    for h, _b in got:
        assert (h.rate, h.channels, h.index) == (RATE, 3, index)
        expected = now + h.index / RATE + unix_minus_lsl
        assert abs(h.t - expected) < 1e-3, (h.index, h.t - expected)
        index += h.frames
    del outlet


def test_bridge_bad_input(control: str) -> None:
    import subprocess

    def bridge(*args: str, code: str = "") -> subprocess.CompletedProcess[str]:
        script = f"import sys; {code}from zaudio.cli.main import main; main(sys.argv[1:])"
        return subprocess.run(
            [sys.executable, "-c", script, "bridge", *args, "--proxy", control],
            capture_output=True, text=True, timeout=60, env=_env(), cwd=ROOT,
        )  # fmt: skip

    for args, what, code in (
        (["lsl-out"], "needs --topic", ""),
        (["osc-out"], "unknown bridge 'osc-out'", ""),
        (["lsl-in"], "needs NAME", ""),
        (["lsl-in", "no-such-lsl-stream", "--wait", "0.5"], "no LSL stream called", ""),
        (["lsl-in", "bad name!"], "invalid stream name", ""),
        (
            ["lsl-out", "--topic", "mic"],
            "pip install 'zaudio[lsl]'",
            "sys.modules['pylsl'] = None; ",
        ),
    ):
        r = bridge(*args, code=code)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.count("\n") == 1 and what in r.stderr, (args, r.stderr)
