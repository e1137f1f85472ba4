"""``zaudio up FILE --export compose``: the same graph, validated offline like docker/compose.yaml."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from tests.helpers import ROOT, proxy_process, run
from zaudio.pipeline import load


def compose_config(path: Path) -> dict[str, Any]:
    """The model ``docker-compose config`` resolves (no engine needed)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ZAUDIO_")}
    out = subprocess.run(
        ["docker-compose", "-f", str(path), "config"],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean,
        cwd=path.parent,
    )
    assert out.returncode == 0, out.stderr
    model: dict[str, Any] = yaml.safe_load(out.stdout)
    return model


def test_example_exports_to_a_compose_file_that_validates(tmp_path: Path) -> None:
    for name in ("pipeline.toml", "gain.py"):
        shutil.copy(ROOT / "examples" / name, tmp_path / name)
    (tmp_path / "deploy").mkdir()
    out = tmp_path / "deploy" / "compose.yaml"
    r = run("up", str(tmp_path / "pipeline.toml"), "--export", "compose", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stderr == f"zaudio up: wrote {out}\n"
    model = compose_config(out)
    services = model["services"]
    assert set(services) == {"proxy", "tone", "voice", "gain", "level", "vad"}
    assert model["networks"]["bus"]["internal"] is True
    assert not any(s.get("ports") for s in services.values())
    assert services["proxy"]["command"] == ["proxy", "--host", "0.0.0.0", "--port", "5555"]
    pipeline = load(tmp_path / "pipeline.toml")
    for node in pipeline.nodes[1:]:
        service = services[node.name]
        # the very command zaudio up runs, pointed at the proxy service
        expected = ["tcp://proxy:5555" if a == pipeline.control else a for a in node.args]
        assert service["command"] == expected
        assert service["restart"] == "on-failure"
        assert service["working_dir"] == "/pipeline"
        assert service["volumes"] == [f"{tmp_path}:/pipeline:rw"]
        assert "proxy" in service["depends_on"]
    # on stdout, host paths are relative to the current directory
    stdout = run("up", "pipeline.toml", "--export", "compose", cwd=tmp_path)
    assert stdout.returncode == 0, stdout.stderr
    (tmp_path / "here.yaml").write_text(stdout.stdout)
    assert compose_config(tmp_path / "here.yaml")["services"]["vad"]["volumes"] == [
        f"{tmp_path}:/pipeline:rw"
    ]


def test_existing_proxy_and_keys_export(tmp_path: Path) -> None:
    assert run("keygen", str(tmp_path / "keys")).returncode == 0
    path = tmp_path / "ext.toml"
    path.write_text(
        '[proxy]\nendpoint = "tcp://hub.lab:6000"\nkeys = "keys"\n\n'
        '[recorder.mic]\nsource = "noise"\nrestart = "always"\nenv = { A = "1" }\n'
    )
    out = tmp_path / "compose.yaml"
    assert run("up", str(path), "--export", "compose", "-o", str(out)).returncode == 0
    model = compose_config(out)
    assert set(model["services"]) == {"mic"}
    mic = model["services"]["mic"]
    assert mic["command"] == [
        "record", "--source", "noise", "--stream", "mic",
        "--proxy", "tcp://hub.lab:6000", "--keys", "/keys",
    ]  # fmt: skip
    assert mic["restart"] == "always"
    assert mic["environment"] == {"A": "1"}
    assert f"{tmp_path / 'keys'}:/keys:ro" in mic["volumes"]
    assert model["networks"]["bus"].get("internal") in (None, False)


KUBERNETES = "1.31.0"  # the schemas deploy/k8s is validated against (tests/test_k8s.py)
DNS1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")


def check_manifest(obj: dict[str, Any]) -> None:
    """Strict schema validation (unknown fields are errors), plus what the schema cannot say."""
    kubernetes_validate.validate(obj, KUBERNETES, strict=True)
    assert DNS1123.match(obj["metadata"]["name"]) and len(obj["metadata"]["name"]) <= 63
    spec = obj["spec"]
    if obj["kind"] == "Service":
        return
    pod = spec["template"]
    if obj["kind"] == "Deployment":
        assert spec["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    volumes = {v["name"] for v in pod["spec"].get("volumes", [])}
    for c in pod["spec"]["containers"]:
        assert DNS1123.match(c["name"])
        assert {m["name"] for m in c.get("volumeMounts", [])} <= volumes


def test_k8s_export(tmp_path: Path) -> None:
    for name in ("pipeline.toml", "gain.py"):
        shutil.copy(ROOT / "examples" / name, tmp_path / name)
    r = run("up", str(tmp_path / "pipeline.toml"), "--export", "k8s", "--image", "lab/zaudio:1")
    assert r.returncode == 0, r.stderr
    objects = list(yaml.safe_load_all(r.stdout))
    for obj in objects:
        check_manifest(obj)
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert kinds == [
        ("Deployment", "zaudio-proxy"),
        ("Service", "zaudio-proxy"),
        *(("Deployment", f"zaudio-{n}") for n in ("tone", "voice", "gain", "level", "vad")),
    ]
    assert [p["port"] for p in objects[1]["spec"]["ports"]] == [5555, 5556, 5557]
    pipeline = load(tmp_path / "pipeline.toml")
    for node, obj in zip(pipeline.nodes[1:], objects[2:], strict=True):
        (container,) = obj["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "lab/zaudio:1"
        assert container["workingDir"] == "/pipeline"
        assert container["args"] == [
            "tcp://zaudio-proxy:5555" if a == pipeline.control else a for a in node.args
        ]
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["exec"]["command"] == [
                "python", "-m", "zaudio.health", "--quiet", "--proxy", "tcp://zaudio-proxy:5555",
            ]  # fmt: skip
    # the proxy's probe asks it on loopback: run that very command against a real proxy
    (proxy_container,) = objects[0]["spec"]["template"]["spec"]["containers"]
    probe = proxy_container["livenessProbe"]["exec"]["command"]
    assert probe[:4] == ["python", "-m", "zaudio.health", "--quiet"]
    assert probe[4:] == ["--proxy", "tcp://127.0.0.1:5555"]
    with proxy_process() as (control, _):
        health = subprocess.run(
            [sys.executable, *probe[1:4], "--proxy", control], capture_output=True, timeout=30
        )
        assert health.returncode == 0, health.stderr


def test_k8s_export_with_keys_and_a_job(tmp_path: Path) -> None:
    assert run("keygen", str(tmp_path / "keys")).returncode == 0
    path = tmp_path / "k.toml"
    path.write_text(
        '[proxy]\nkeys = "keys"\n\n'
        '[recorder."Lab/Mic"]\nsource = "noise"\nstream = "lab/mic"\nduration = "5s"\nrestart = "no"\n'
    )
    r = run("up", str(path), "--export", "k8s")
    assert r.returncode == 0, r.stderr
    objects = list(yaml.safe_load_all(r.stdout))
    for obj in objects:
        check_manifest(obj)
    job = objects[-1]
    assert (job["kind"], job["metadata"]["name"], job["spec"]["backoffLimit"]) == (
        "Job",
        "zaudio-lab-mic",
        0,
    )
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["args"][-2:] == ["--keys", "/keys"]
    (volume,) = pod["volumes"]
    assert volume["secret"]["secretName"] == "zaudio-node-keys"
    assert {i["path"] for i in volume["secret"]["items"]} == {
        "client.key",
        "client.key_secret",
        "server.key",
    }
    proxy_items = objects[0]["spec"]["template"]["spec"]["volumes"][0]["secret"]["items"]
    assert {i["path"] for i in proxy_items} == {
        "server.key",
        "server.key_secret",
        "authorized/client.key",
    }
    # the header says how to create both secrets from the keys directory
    for secret in ("zaudio-proxy-keys", "zaudio-node-keys"):
        assert f"#   kubectl create secret generic {secret} --from-file=" in r.stdout
    assert (
        f"--from-file=authorized.client.key={tmp_path / 'keys' / 'authorized' / 'client.key'}"
        in r.stdout
    )


def test_replicas_export_as_one_service_and_one_deployment_of_n(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text(
        '[recorder.tone]\nsource = "sine:440"\n\n'
        '[processor.vad]\nfunction = "level"\ntopics = ["tone"]\ngroup = "vad"\nreplicas = 3\n'
        'output = "vad-out"\n\n'
        '[processor.once]\nfunction = "level"\ntopics = ["tone"]\ngroup = "o"\n'
        'replicas = 2\nrestart = "no"\n'
    )
    out = tmp_path / "compose.yaml"
    assert run("up", str(path), "--export", "compose", "-o", str(out)).returncode == 0
    services = compose_config(out)["services"]
    assert set(services) == {"proxy", "tone", "vad", "vad.sequence", "once"}
    assert services["vad"]["scale"] == 3
    # a group with an output: its sequencer publishes the members' arrays as vad-out
    assert services["vad.sequence"]["command"] == [
        "sequence", "vad-out", "--proxy", "tcp://proxy:5555",
    ]  # fmt: skip
    assert "scale" not in services["vad.sequence"]
    assert services["vad"]["command"][services["vad"]["command"].index("--group") + 1] == "vad"
    assert "scale" not in services["tone"]
    r = run("up", str(path), "--export", "k8s")
    assert r.returncode == 0, r.stderr
    objects = {o["metadata"]["name"]: o for o in yaml.safe_load_all(r.stdout)}
    for obj in objects.values():
        check_manifest(obj)
    assert objects["zaudio-vad"]["kind"] == "Deployment"
    assert objects["zaudio-vad"]["spec"]["replicas"] == 3
    assert objects["zaudio-tone"]["spec"]["replicas"] == 1
    (seq,) = objects["zaudio-vad-sequence"]["spec"]["template"]["spec"]["containers"]
    assert seq["args"][:2] == ["sequence", "vad-out"]
    job = objects["zaudio-once"]
    assert job["kind"] == "Job"
    assert (job["spec"]["parallelism"], job["spec"]["completions"]) == (2, 2)
