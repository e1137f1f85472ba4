"""A real capture device: PulseAudio's null sink through PortAudio, and device errors.

The ``pulse`` fixture (tests/pulse.py) starts a private PulseAudio daemon; nothing
here is skipped. Missing PortAudio is simulated for real: a ``sitecustomize``
makes ``ctypes.util.find_library("portaudio")`` find nothing, so the real
``import sounddevice`` raises its real ``OSError('PortAudio library not found')``
inside the real ``zaudio`` process.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.helpers import Listener, env, listing, run, spawn, stop, wait_until
from tests.pulse import pulse  # noqa: F401  (the session fixture)
from tests.test_recorder import check_stream, one_error_line

RATE = 48000


def test_mic_records_a_sine_played_into_the_null_sink(
    pulse: dict[str, str],  # noqa: F811
    proxy_proc: str,
    tmp_path: Path,
) -> None:
    wav = tmp_path / "a440.wav"
    n = np.arange(RATE * 20)
    sf.write(wav, (0.5 * np.sin(2 * np.pi * 440 * n / RATE)).astype(np.float32), RATE, "FLOAT")
    player = subprocess.Popen(
        ["paplay", "--device=zsink", str(wav)],
        env=pulse,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with Listener(proxy_proc, "pmic") as listener:
            with spawn(
                "record", "--source", "mic", "--stream", "pmic", "--duration", "2",
                "--proxy", proxy_proc, env=env(**pulse),
            ) as rec:  # fmt: skip
                first = listener.collect(1, 20)
                stats = wait_until(
                    lambda: [
                        n["stats"]
                        for n in listing(proxy_proc)["nodes"]
                        if n["name"] == "pmic" and n["stats"]
                    ],
                    10,
                    "recorder heartbeat",
                )[0]
                rest = listener.collect(199, 10)
                assert rec.wait(10) == 0, rec.stderr.read() if rec.stderr else ""
    finally:
        stop(player)
    headers, samples = check_stream(first + rest, RATE)
    assert headers[0].index == 0 and sum(h.frames for h in headers) == RATE * 2
    assert abs(headers[0].t - time.time()) < 5, "t from the capture, in the proxy's time base"
    assert "overflows" in stats and "dropped" in stats
    # The sine may start a little after the capture: analyse the last second.
    x = samples[-RATE:, 0].astype(np.float64)
    rms = float(np.sqrt(np.mean(x**2)))
    assert abs(rms - 0.5 / np.sqrt(2)) < 0.01, rms
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    peak = float(np.fft.rfftfreq(len(x), 1 / RATE)[np.argmax(spectrum)])
    assert abs(peak - 440) <= 1.5, peak
    print(f"captured 440 Hz sine 0.5: peak {peak:.1f} Hz, rms {rms:.4f}")


def test_device_by_name_and_devices_listing(
    pulse: dict[str, str],  # noqa: F811
    proxy_proc: str,
) -> None:
    listed = run("devices", env=env(**pulse))
    assert listed.returncode == 0, listed.stderr
    rows = [r for r in listed.stdout.splitlines() if "pulse" in r]
    assert rows, listed.stdout
    assert any(r.startswith(">") for r in listed.stdout.splitlines()), "default input marked"
    with Listener(proxy_proc, "dev") as listener:
        done = run(
            "record", "--source", "device:pulse", "--stream", "dev", "--duration", "0.2",
            "--block", "240", "--proxy", proxy_proc, env=env(**pulse),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        headers, _ = check_stream(listener.collect(40, 10), RATE)
    assert headers[0].index == 0 and all(h.frames == 240 for h in headers)


def test_unknown_device_exits_2_with_one_line(pulse: dict[str, str]) -> None:  # noqa: F811
    for spec in ("device:nosuch", "device:99"):
        done = run("record", "--source", spec, "--proxy", "tcp://127.0.0.1:9", env=env(**pulse))
        line = one_error_line(done)
        assert spec.split(":")[1] in line and "zaudio devices" in line, line


def test_no_sound_server_exits_2_with_one_line() -> None:
    nothing = env(PULSE_SERVER="unix:/nonexistent/native")
    line = one_error_line(run("record", "--source", "mic", "--proxy", "tcp://127.0.0.1:9",
                              env=nothing))  # fmt: skip
    assert "no default audio input device" in line and "zaudio devices" in line
    line = one_error_line(run("devices", env=nothing))
    assert "no audio devices" in line


def test_portaudio_missing_exits_2_with_one_line(tmp_path: Path, proxy_proc: str) -> None:
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import ctypes.util\n"
        "_find = ctypes.util.find_library\n"
        "ctypes.util.find_library = lambda name: None if 'portaudio' in name else _find(name)\n"
    )
    no_portaudio = env(PYTHONPATH=str(hide))
    # the simulation is real: sounddevice itself fails to load PortAudio
    probe = subprocess.run(
        [sys.executable, "-c", "import sounddevice"],
        env=no_portaudio,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert probe.returncode != 0 and "OSError: PortAudio library not found" in probe.stderr
    for args in (
        ("record", "--source", "mic", "--proxy", proxy_proc),
        ("record", "--source", "device:1", "--proxy", proxy_proc),
        ("devices",),
    ):
        done = run(*args, env=no_portaudio)
        line = one_error_line(done)
        assert line == "Error: PortAudio library not found: apt-get install libportaudio2", line
    # only the mic source needs PortAudio
    done = run("record", "--source", "sine:440", "--duration", "0.1", "--fast",
               "--stream", "nopa", "--proxy", proxy_proc, env=no_portaudio)  # fmt: skip
    assert done.returncode == 0, done.stderr
