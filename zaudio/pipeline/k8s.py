"""The same graph as Kubernetes manifests: ``zaudio up FILE --export k8s``.

One document per object, each node running the command line ``zaudio up``
would run (see :mod:`zaudio.pipeline.export` for the compose file), shaped like
deploy/k8s/base (names ``zaudio-NAME``, the same labels, security context and
``zaudio.health`` probes):

- the proxy: a Deployment (``Recreate``) binding ``0.0.0.0`` and a Service
  ``zaudio-proxy`` with its control, publish-in and subscribe-out ports; the
  nodes reach it as ``tcp://zaudio-proxy:PORT`` (with ``[proxy] endpoint``: no
  proxy objects, the endpoint is kept);
- a node with ``restart = "always"`` or ``"on-failure"``: a Deployment of one
  replica (Kubernetes restarts its pod whatever the exit code, with its own
  back-off), or of N for a group processor with ``replicas = N``; ``restart =
  "no"``: a Job that runs once (``backoffLimit: 0``; ``parallelism: N`` with
  replicas);
- the working directory is ``/pipeline``: the image must hold the pipeline's
  folder there (``FROM zaudio`` + ``COPY . /pipeline``; ``--image``);
- keys: the proxy mounts the Secret ``zaudio-proxy-keys`` (server keypair,
  ``authorized/``), every node ``zaudio-node-keys`` (its keypair and the
  server's public key), both at ``/keys``; the header says how to create them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from zaudio.pipeline.config import Node, Pipeline
from zaudio.pipeline.export import KEYS, WORKDIR, service_args, yaml

__all__ = ["to_k8s"]

LABEL = "app.kubernetes.io/name"
PART = "app.kubernetes.io/component"
SECRETS = {"proxy": "zaudio-proxy-keys", "node": "zaudio-node-keys"}
PROXY = "zaudio-proxy"  # the Deployment and the Service the nodes reach


def _dns(name: str, taken: set[str]) -> str:
    """An RFC 1123 label from a node name, unique among ``taken``."""
    label = "zaudio-" + (re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:50] or "node")
    base, n = label, 2
    while label in taken:
        label, n = f"{base}-{n}", n + 1
    taken.add(label)
    return label


def _key_files(directory: str, proxy: bool) -> list[tuple[str, str]]:
    """(secret key, path under /keys) of what one side needs from a keys directory."""
    d = Path(directory)
    names = (
        ["server.key", "server.key_secret"]
        if proxy
        else ["client.key", "client.key_secret", "server.key"]
    )
    files = [(n, n) for n in names]
    if proxy:
        files += [
            (f"authorized.{p.name}", f"authorized/{p.name}")
            for p in sorted((d / "authorized").glob("*.key"))
        ]
    return files


def _ports(node: Node) -> dict[str, int]:
    args = list(node.args)

    def value(flag: str) -> int | None:
        return int(args[args.index(flag) + 1]) if flag in args else None

    port = value("--port") or 5555
    return {
        "control": port,
        "publish-in": value("--pub-port") or port + 1,
        "subscribe-out": value("--sub-port") or port + 2,
    }


# As deploy/k8s/base: no service-account token, non-root (the image's user), no
# privilege escalation, no capabilities. The root filesystem stays writable: a
# pipeline may write into its folder (a writer's relative path).
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 29,
    "fsGroup": 29,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def _probe(health: list[str], delay: int) -> dict[str, Any]:
    return {
        "exec": {"command": health},
        "initialDelaySeconds": delay,
        "periodSeconds": 10,
        "timeoutSeconds": 10,
        "failureThreshold": 3,
    }


def _pod(
    pipeline: Pipeline, node: Node, name: str, image: str, proxy: str, job: bool
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name.removeprefix("zaudio-"),
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": service_args(pipeline, node, proxy),
        "workingDir": WORKDIR,
    }
    if node.env:
        container["env"] = [{"name": k, "value": v} for k, v in node.env.items()]
    # zaudio.health, as in the image's HEALTHCHECK: the proxy answers (asked on
    # loopback), or this pod's node is registered (its host name is the pod's name)
    if node.kind == "proxy":
        ports = _ports(node)
        container["ports"] = [{"name": k, "containerPort": v} for k, v in ports.items()]
        asks = f"tcp://127.0.0.1:{ports['control']}"
    else:
        asks = proxy
    health = ["python", "-m", "zaudio.health", "--quiet", "--proxy", asks]
    if pipeline.keys:
        health += ["--keys", KEYS]
    container["securityContext"] = CONTAINER_SECURITY
    if not job:
        container["livenessProbe"] = _probe(health, 10)
        container["readinessProbe"] = _probe(health, 2 if node.kind == "proxy" else 5)
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": POD_SECURITY,
        "containers": [container],
    }
    if job:
        spec["restartPolicy"] = "Never"
    if pipeline.keys:
        side = "proxy" if node.kind == "proxy" else "node"
        container["volumeMounts"] = [{"name": "keys", "mountPath": KEYS, "readOnly": True}]
        items = [{"key": k, "path": p} for k, p in _key_files(pipeline.keys, side == "proxy")]
        spec["volumes"] = [
            {"name": "keys", "secret": {"secretName": SECRETS[side], "items": items}}
        ]
    return {"metadata": {"labels": _labels(name)}, "spec": spec}


def _labels(name: str) -> dict[str, str]:
    return {LABEL: "zaudio", PART: name.removeprefix("zaudio-")}


def _objects(pipeline: Pipeline, image: str) -> list[dict[str, Any]]:
    port = pipeline.control.rpartition(":")[2]
    proxy = f"tcp://{PROXY}:{port}" if pipeline.started_proxy else pipeline.control
    taken: set[str] = {PROXY} if pipeline.started_proxy else set()
    out: list[dict[str, Any]] = []
    for node in pipeline.nodes:
        name = PROXY if node.kind == "proxy" else _dns(node.name, taken)
        meta = {"name": name, "labels": _labels(name)}
        if node.restart.policy == "no":
            pod = _pod(pipeline, node, name, image, proxy, job=True)
            out.append(
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "metadata": meta,
                    "spec": {
                        "backoffLimit": 0,
                        **(
                            {"parallelism": node.replicas, "completions": node.replicas}
                            if node.replicas != 1
                            else {}
                        ),
                        "template": pod,
                    },
                }
            )
            continue
        spec: dict[str, Any] = {"replicas": node.replicas}
        if node.kind == "proxy":
            spec["strategy"] = {"type": "Recreate"}  # a rollout never runs two proxies
        spec["selector"] = {"matchLabels": _labels(name)}
        spec["template"] = _pod(pipeline, node, name, image, proxy, job=False)
        out.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec})
        if node.kind == "proxy":
            ports = [{"name": k, "port": v, "targetPort": k} for k, v in _ports(node).items()]
            out.append(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": meta,
                    "spec": {"selector": _labels(name), "ports": ports},
                }
            )
    return out


def to_k8s(pipeline: Pipeline, image: str = "zaudio:latest") -> str:
    """Kubernetes manifests for ``pipeline`` (one YAML stream, ``---`` between objects)."""
    header = [
        f"# The pipeline {pipeline.path.name} as Kubernetes objects (zaudio up --export k8s).",
        "#   kubectl apply -f THIS_FILE",
        f"# The image ({image}) must hold the pipeline's folder at {WORKDIR}.",
    ]
    if pipeline.keys:
        for side, secret in SECRETS.items():
            files = " ".join(
                f"--from-file={k}={Path(pipeline.keys) / p}"
                for k, p in _key_files(pipeline.keys, side == "proxy")
            )
            header.append(f"#   kubectl create secret generic {secret} {files}")
    docs = ["\n".join(yaml(obj)) for obj in _objects(pipeline, image)]
    return "\n".join(header) + "\n" + "\n---\n".join(docs) + "\n"
