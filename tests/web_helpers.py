"""Helpers for the browser tests: ``zaudio web`` as a process, headless Chromium.

Chromium and chromedriver come from Debian (scripts/system-deps); Selenium drives
them with no driver download. The fake microphone plays a WAV file.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.helpers import free_ports, spawn, stop, wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as r:
            return bool(r.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def web_process(control: str, *extra: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``zaudio web`` on a free port; yields (base URL, process)."""
    port = free_ports(1)
    url = f"http://127.0.0.1:{port}"
    with spawn("web", "--port", str(port), "--proxy", control, *extra) as proc:
        wait_until(lambda: _answers(url + "/") or proc.poll() is not None, 15, "zaudio web")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        yield url, proc
        # a clean shutdown: exit 0, no traceback
        code = stop(proc)
        err = proc.stderr.read() if proc.stderr else ""
        assert code == 0 and "Traceback" not in err, err


@contextlib.contextmanager
def chromium(wav: Path | None = None) -> Iterator[Any]:
    """Headless Chromium with a fake microphone (playing ``wav``); always quit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    with tempfile.TemporaryDirectory(prefix="zaudio-chromium-") as profile:
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            "--autoplay-policy=no-user-gesture-required",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={profile}",
        ):
            opts.add_argument(flag)
        if wav is not None:
            opts.add_argument(f"--use-file-for-fake-audio-capture={wav.resolve()}")
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        try:
            driver.set_page_load_timeout(15)
            driver.set_script_timeout(10)
            yield driver
        finally:
            driver.quit()


def page_state(driver: Any) -> tuple[str, str]:
    """The page's ``#state`` (data-state) and ``#detail`` text."""
    state, detail = driver.execute_script(
        "const s = document.getElementById('state');"
        "return [s.dataset.state, document.getElementById('detail').textContent];"
    )
    return str(state), str(detail)
