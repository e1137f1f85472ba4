"""A real capture device for the tests: a private PulseAudio daemon with a null sink.

``pulse_server(dir)`` starts ``pulseaudio`` in the foreground (our child, so we
reap it: PID 1 here reaps no orphans) with its own runtime directory, a
``zsink`` null sink (float32, 48 kHz, mono) and a ``zmic`` remap source on its
monitor, both made the defaults, plus one low-latency ``parec`` reader that
keeps the idle sink rendering in small chunks (RECIPES.md). It yields the
environment a client needs (``PULSE_SERVER``); PortAudio reaches the daemon
through ALSA's ``pulse`` device (libasound2-plugins), so ``--source mic`` and
``device:pulse`` record what is played into ``zsink``.

The ``pulse`` fixture (session scope) wraps it; import it into a test module.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import stop, wait_until

RATE = 48000


def _pactl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["pactl", *args], env=env, capture_output=True, text=True, timeout=10, check=False
    )


@contextlib.contextmanager
def pulse_server(directory: Path) -> Iterator[dict[str, str]]:
    """Run a private PulseAudio daemon; yield the client environment (with ``PULSE_SERVER``)."""
    for tool in ("pulseaudio", "pactl", "parec"):
        assert shutil.which(tool), f"{tool} missing: run scripts/system-deps"
    runtime = directory / "run"
    runtime.mkdir(parents=True, exist_ok=True)
    socket = runtime / "native"
    env = dict(os.environ)
    env.update(
        PULSE_RUNTIME_PATH=str(runtime),
        PULSE_STATE_PATH=str(directory / "state"),
        PULSE_SERVER=f"unix:{socket}",
    )
    env.pop("PULSE_SOURCE", None)
    env.pop("PULSE_SINK", None)
    daemon = subprocess.Popen(
        [
            "pulseaudio",
            "--daemonize=no",
            "-n",
            "--exit-idle-time=-1",
            "--disallow-exit",
            "--use-pid-file=no",
            "--log-target=stderr",
            "--log-level=error",
            f"--load=module-native-protocol-unix auth-anonymous=1 socket={socket}",
            f"--load=module-null-sink sink_name=zsink format=float32le rate={RATE} channels=1",
            "--load=module-remap-source source_name=zmic master=zsink.monitor",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    reader: subprocess.Popen[bytes] | None = None
    try:
        wait_until(
            lambda: daemon.poll() is not None or _pactl(env, "info").returncode == 0,
            15,
            "pulseaudio to answer",
        )
        assert daemon.poll() is None, (
            f"pulseaudio exited: {daemon.stderr.read() if daemon.stderr else ''}"
        )
        for args in (("set-default-sink", "zsink"), ("set-default-source", "zmic")):
            done = _pactl(env, *args)
            assert done.returncode == 0, done.stderr
        reader = subprocess.Popen(
            [
                "parec",
                "--latency-msec=10",
                "--format=float32le",
                f"--rate={RATE}",
                "--channels=1",
                "-d",
                "zsink.monitor",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        yield env
    finally:
        if reader is not None:
            stop(reader)
        stop(daemon)
        if daemon.stderr is not None:
            daemon.stderr.close()


@pytest.fixture(scope="session")
def pulse() -> Iterator[dict[str, str]]:
    """A private PulseAudio null sink + source for the whole session; yields the client env."""
    with tempfile.TemporaryDirectory(prefix="zaudio-pulse-") as d, pulse_server(Path(d)) as env:
        yield env
