"""deploy/k8s: every kustomization builds and validates offline, and the manifests run.

Offline: ``kubectl kustomize`` builds the base, every overlay and the
prometheus-adapter config, and kubernetes-validate (strict: unknown fields are
errors) accepts every object against the schemas of Kubernetes ``KUBERNETES``. For
real, without a cluster: ``scripts/k8s-check`` plays the podman overlay with
``podman kube play`` from the images the set-up built from this tree (see
deploy/k8s/README.md), and nothing of it is left afterwards.
"""

from __future__ import annotations

import base64
import contextlib
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.helpers import ROOT, env, proxy_process, run, spawn, stop, wait_until
from tests.test_docker import _podman_env
from tests.test_metrics import parse, scrape_text
from zaudio.client import request
from zaudio.endpoints import free_ports
from zaudio.errors import ZaudioError
from zaudio.importer import BUILTINS
from zaudio.metricspecs import PROCESSOR
from zaudio.security import Keys

K8S = ROOT / "deploy" / "k8s"
KUBERNETES = "1.31.0"  # the schemas every object is validated against
TARGETS = ["base", "overlays/podman", "overlays/keys", "overlays/autoscale", "prometheus-adapter"]
NODES = ["recorder", *BUILTINS, "peak"]  # every Deployment but the proxy's
LAG = f"zaudio_processor_{PROCESSOR['lag'][0]}"
Obj = dict[str, Any]


def kustomize(target: str, tmp: Path) -> list[Obj]:
    """``kubectl kustomize`` of ``target`` (a copy with fresh keys for overlays/keys)."""
    tree = K8S
    if target == "overlays/keys":
        tree = tmp / "k8s"
        shutil.copytree(K8S, tree)
        assert run("keygen", str(tree / "overlays" / "keys" / "keys")).returncode == 0
    out = subprocess.run(
        ["kubectl", "kustomize", str(tree / target)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    # kustomize v2 (Debian's kubectl 1.20) writes `{}` for an object a patch deleted
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def by_kind(objs: list[Obj], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def pod_spec(deployment: Obj) -> Obj:
    spec: Obj = deployment["spec"]["template"]["spec"]
    return spec


def container(deployment: Obj) -> Obj:
    (c,) = pod_spec(deployment)["containers"]
    return c  # type: ignore[no-any-return]


def bus_env(objs: list[Obj]) -> dict[str, str]:
    """The ConfigMap every node reads its environment from (envFrom)."""
    (cm,) = [
        o
        for o in objs
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("zaudio-bus")
    ]
    for d in by_kind(objs, "Deployment").values():
        refs = [e["configMapRef"]["name"] for e in container(d).get("envFrom", [])]
        assert refs == ([] if d["metadata"]["name"] == "zaudio-proxy" else [cm["metadata"]["name"]])
    return cm["data"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("target", TARGETS)
def test_builds_and_every_object_validates_strictly(target: str, tmp_path: Path) -> None:
    objs = kustomize(target, tmp_path)
    assert objs
    for obj in objs:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def test_strict_validation_rejects_a_misspelt_field(tmp_path: Path) -> None:
    """The check can fail: one unknown field in a probe is an error."""
    proxy = by_kind(kustomize("base", tmp_path), "Deployment")["zaudio-proxy"]
    container(proxy)["livenessProbe"]["periodSecond"] = 10
    with pytest.raises(kubernetes_validate.ValidationError, match="periodSecond"):
        kubernetes_validate.validate(proxy, KUBERNETES, strict=True)


def test_base_is_a_proxy_service_and_a_deployment_per_node(tmp_path: Path) -> None:
    objs = kustomize("base", tmp_path)
    deployments = by_kind(objs, "Deployment")
    assert sorted(deployments) == sorted(["zaudio-proxy", *(f"zaudio-{n}" for n in NODES)])
    proxy = deployments["zaudio-proxy"]
    assert proxy["spec"]["replicas"] == 1
    assert proxy["spec"]["strategy"] == {"type": "Recreate"}  # never two proxies
    ports = {p["name"]: p["containerPort"] for p in container(proxy)["ports"]}
    assert ports == {"control": 5555, "publish-in": 5556, "subscribe-out": 5557, "metrics": 9105}
    service = by_kind(objs, "Service")["zaudio-proxy"]
    assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        name: (port, name) for name, port in ports.items()
    }
    labels = proxy["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    # nodes reach the proxy through the Service's DNS name and control port
    assert bus_env(objs) == {"ZAUDIO_PROXY": "tcp://zaudio-proxy:5555"}
    for name in BUILTINS:
        args = container(deployments[f"zaudio-{name}"])["args"]
        assert args == ["process", name]
    # the example runs its image's CMD (docker/example-processor/Dockerfile)
    peak = container(deployments["zaudio-peak"])
    assert peak["image"] == "zaudio-peak:latest" and "args" not in peak
    claim = pod_spec(deployments["zaudio-writer"])["volumes"][0]["persistentVolumeClaim"]
    assert claim["claimName"] in by_kind(objs, "PersistentVolumeClaim")


def test_every_container_is_probed_limited_and_not_root(tmp_path: Path) -> None:
    healthcheck = re.search(
        r"^HEALTHCHECK .*\\\n\s+CMD (\[.*\])$", (ROOT / "docker" / "Dockerfile").read_text(), re.M
    )
    assert healthcheck
    command = yaml.safe_load(healthcheck.group(1))
    assert command == ["python", "-m", "zaudio.health", "--quiet"]
    for name, d in by_kind(kustomize("base", tmp_path), "Deployment").items():
        c = container(d)
        for probe in ("livenessProbe", "readinessProbe"):
            assert c[probe]["exec"]["command"] == command, (name, probe)
            assert c[probe]["timeoutSeconds"] >= 5, name  # zaudio.health waits 2 s
        for kind in ("requests", "limits"):
            assert set(c["resources"][kind]) == {"cpu", "memory"}, (name, kind)
        pod = pod_spec(d)["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001, name
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["readOnlyRootFilesystem"] is True, name


def test_podman_overlay_reaches_the_proxy_by_its_pod_name(tmp_path: Path) -> None:
    objs = kustomize("overlays/podman", tmp_path)
    # podman kube play names a Deployment's pod DEPLOYMENT-pod-0 and ignores Services
    assert bus_env(objs) == {"ZAUDIO_PROXY": "tcp://zaudio-proxy-pod-0:5555"}
    assert "PersistentVolumeClaim" not in {o["kind"] for o in objs}  # kube down keeps claims
    deployments = by_kind(objs, "Deployment")
    assert pod_spec(deployments["zaudio-writer"])["volumes"] == [
        {"name": "zaudio-recordings", "emptyDir": {}}
    ]
    for d in deployments.values():
        assert container(d)["image"].startswith("localhost/zaudio")
        # podman would publish each containerPort on the host's own port
        assert "ports" not in container(d)


def _materialise(objs: list[Obj], deployment: Obj, into: Path) -> Path:
    """Write the files of ``deployment``'s Secret volume as its container would see them."""
    (volume,) = [v for v in pod_spec(deployment)["volumes"] if "secret" in v]
    secret = by_kind(objs, "Secret")[volume["secret"]["secretName"]]
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    items = volume["secret"].get("items") or [{"key": k, "path": k} for k in data]
    for item in items:
        path = into / item["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[item["key"]])
    (mount,) = [m for m in container(deployment)["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["mountPath"] == "/keys" and mount["readOnly"] is True
    assert volume["secret"]["defaultMode"] == 0o440  # group audio (fsGroup 29) reads them
    return into


def test_keys_overlay_gives_each_side_what_it_needs_and_they_talk(tmp_path: Path) -> None:
    """The Secrets, mounted as the pods mount them, are key directories zaudio accepts:
    a real proxy with the proxy's, a real node with a node's (which never holds
    server.key_secret), and the proxy's own health check through CurveZMQ."""
    objs = kustomize("overlays/keys", tmp_path)
    assert bus_env(objs)["ZAUDIO_KEYS"] == "/keys"
    deployments = by_kind(objs, "Deployment")
    proxy = deployments.pop("zaudio-proxy")
    assert {"name": "ZAUDIO_KEYS", "value": "/keys"} in container(proxy)["env"]
    proxy_keys = _materialise(objs, proxy, tmp_path / "proxy")
    nodes = [_materialise(objs, d, tmp_path / n) for n, d in deployments.items()]
    assert len(nodes) == len(NODES)
    for keys in nodes:
        assert not (keys / "server.key_secret").exists()
        Keys.for_client(keys)
    port = free_ports(3)
    control = f"tcp://127.0.0.1:{port}"
    node = Keys.for_client(nodes[0])
    with spawn("proxy", "--port", str(port), "--keys", str(proxy_keys)) as proxy:

        def answers() -> bool:
            assert proxy.poll() is None, proxy.stderr.read() if proxy.stderr else ""
            with contextlib.suppress(ZaudioError):
                return "nodes" in request(control, {"op": "list"}, timeout=0.5, keys=node)
            return False

        wait_until(answers, 15, "the proxy to answer a node with the node's keys")
        health = subprocess.run(
            [sys.executable, "-m", "zaudio.health", "--proxy", control, "--keys", str(proxy_keys)],
            capture_output=True, text=True, timeout=30, env=env(),
        )  # fmt: skip
        assert health.returncode == 0, health.stderr
        assert health.stdout.startswith(f"healthy: proxy {control} answers")


def test_autoscale_overlay_scales_a_processor_on_the_adapters_metric(tmp_path: Path) -> None:
    objs = kustomize("overlays/autoscale", tmp_path)
    (hpa,) = by_kind(objs, "HorizontalPodAutoscaler").values()
    target = hpa["spec"]["scaleTargetRef"]
    assert target["kind"] == "Deployment" and target["name"] in by_kind(objs, "Deployment")
    # its replicas are one processor group: they share the blocks, so more lower the lag
    group = {"name": "ZAUDIO_PROCESS_GROUP", "value": target["name"].removeprefix("zaudio-")}
    assert group in container(by_kind(objs, "Deployment")[target["name"]])["env"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == LAG
    proxy = by_kind(objs, "Deployment")["zaudio-proxy"]
    annotations = proxy["spec"]["template"]["metadata"]["annotations"]
    metrics_port = {p["name"]: p["containerPort"] for p in container(proxy)["ports"]}["metrics"]
    assert annotations["prometheus.io/port"] == str(metrics_port)
    assert {"name": "ZAUDIO_PROXY_METRICS", "value": f"0.0.0.0:{metrics_port}"} in container(proxy)[
        "env"
    ]
    (rule,) = _adapter_rules(tmp_path)
    assert rule["name"]["as"] == LAG


def _adapter_rules(tmp: Path) -> list[Obj]:
    (cm,) = kustomize("prometheus-adapter", tmp)
    assert cm["metadata"] == {"name": "adapter-config", "namespace": "monitoring"}
    rules: list[Obj] = yaml.safe_load(cm["data"]["config.yaml"])["rules"]
    return rules


def test_adapter_rule_matches_what_a_real_proxy_exports(tmp_path: Path) -> None:
    """A real proxy with --metrics and two members of a processor group (the autoscale
    overlay's replicas): the series the adapter's rule selects exists for each, with
    every label the rule names (but namespace, which Prometheus adds at scrape) and
    host = this machine's host name, the pod's name in a pod."""
    (rule,) = _adapter_rules(tmp_path)
    m = re.fullmatch(r"(\w+)\{(.*)\}", rule["seriesQuery"])
    assert m and m.group(1) == LAG
    matched = set(re.findall(r'(\w+)!=""', m.group(2)))
    mapped = set(rule["resources"]["overrides"])
    assert rule["resources"]["overrides"]["host"] == {"resource": "pod"}
    port = free_ports(1)
    url = f"http://127.0.0.1:{port}/metrics"
    with proxy_process("--heartbeat", "0.2", "--metrics", f"127.0.0.1:{port}") as (control, _):
        member = ("process", "level", "--group", "lvl", "--topic", "tone", "--proxy", control)
        with spawn(*member), spawn(*member):
            rec = ("--source", "sine:440", "--stream", "tone", "--rate", "8000")
            with spawn("record", *rec, "--proxy", control):

                def lagging() -> list[dict[str, str]] | None:
                    samples = parse(scrape_text(url))
                    found = [dict(ls) for (n, ls) in samples if n == LAG]
                    return found if len(found) == 2 else None

                series = wait_until(lagging, 30, f"{LAG} of both members", interval=0.2)
    assert len({labels["node"] for labels in series}) == 2
    for labels in series:
        assert labels["host"] == socket.gethostname()
        assert (matched | mapped) - {"namespace"} <= set(labels)


# --- for real: podman kube play --------------------------------------------------


@contextlib.contextmanager
def k8s_check(log: Path) -> Iterator[subprocess.Popen[str]]:
    """``scripts/k8s-check --no-setup`` with its output in ``log``; on the way out it is
    sent SIGTERM (its trap tears the pods down) and reaped, bounded."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["bash", "scripts/k8s-check", "--no-setup"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env=_podman_env(),
        )
        try:
            yield proc
        finally:
            stop(proc, timeout=90)


def _run_of(log: Path) -> tuple[str, list[str]] | None:
    """(network, pod names) once k8s-check has said them."""
    m = re.search(r"run \d+: \d+ Deployments on network (\S+): (.+)", log.read_text())
    return (m.group(1), m.group(2).split()) if m else None


def _left_behind(network: str, pods: list[str]) -> list[str]:
    """Pods, containers, volumes and the network of one k8s-check run still there."""

    def podman(*args: str) -> list[str]:
        out = subprocess.run(
            ["podman", *args], capture_output=True, text=True, timeout=60, env=_podman_env()
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.split()

    left = [f"pod {p}" for p in podman("pod", "ps", "--format", "{{.Name}}") if p in pods]
    left += [
        f"container {c}"
        for c in podman("ps", "-a", "--format", "{{.Names}}")
        if any(c.startswith(f"{p}-") for p in pods)
    ]
    left += [f"volume {v}" for v in podman("volume", "ls", "--format", "{{.Name}}")
             if v == "zaudio-recordings"]  # fmt: skip
    left += [
        f"network {n}" for n in podman("network", "ls", "--format", "{{.Name}}") if n == network
    ]
    for proc in Path("/proc").iterdir():  # conmon of each container, exec sessions
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                if any(f" {p}-" in cmd for p in pods) or network in cmd:
                    left.append(f"process {proc.name}: {cmd[:120]}")
    state = Path(_podman_env().get("STATE", "/tmp/zaudio-podman"))
    if (state / "k8s-check.lock").exists():
        left.append(f"lock {state / 'k8s-check.lock'}")
    return left


@pytest.mark.slow
@pytest.mark.timeout(500)
def test_manifests_run_under_podman_kube_play(tmp_path: Path) -> None:
    """The podman overlay, played: every processor pod receives the recorder's stream,
    every container's healthcheck (its livenessProbe) passes, the proxy exports the
    HPA's metric for every processor pod, and after ``podman kube down`` no pod,
    container, volume or network of the run is left."""
    log = tmp_path / "k8s-check.log"
    with k8s_check(log) as proc:
        proc.wait(420)
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    for line in (
        "the recorder's stream reaches every processor pod",
        f"healthchecks (livenessProbe: python -m zaudio.health) of {len(NODES) + 1} containers: healthy",
        f"the proxy exports {LAG} for every processor pod",
        "podman kube down: no pod, container, volume or network left",
    ):
        assert f"k8s-check: {line}" in text, text[-3000:]
    started = _run_of(log)
    assert started and len(started[1]) == len(NODES) + 1, text
    assert _left_behind(*started) == []


@pytest.mark.slow
@pytest.mark.timeout(500)
def test_k8s_check_takes_everything_down_when_terminated(tmp_path: Path) -> None:
    log = tmp_path / "k8s-check.log"
    with k8s_check(log) as proc:
        network, pods = wait_until(lambda: _run_of(log), 150, "k8s-check to start", interval=0.5)

        def played() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            return "k8s-check: played" in log.read_text()

        wait_until(played, 120, "the pods to be played", interval=0.5)
        assert stop(proc, timeout=90) == 143, log.read_text()[-3000:]
    assert _left_behind(network, pods) == []
