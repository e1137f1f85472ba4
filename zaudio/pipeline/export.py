"""The same graph as a compose file: ``zaudio up FILE --export compose``.

Each node becomes a service running the zaudio image with the very command line
``zaudio up`` would run, so a pipeline tried on a laptop deploys unchanged:

- the proxy binds ``0.0.0.0`` inside its container on the internal network
  ``bus`` (nothing is published, as in docker/compose.yaml); the nodes reach it
  as ``tcp://proxy:PORT``; a pipeline with ``[proxy] endpoint`` keeps that
  endpoint and gets no proxy service (and a network that is not internal);
- the pipeline file's directory is mounted at ``/pipeline``, the nodes' working
  directory, so ``function = "x.py:fn"``, file sources and writer paths resolve
  as they do under ``zaudio up``; a keys directory is mounted read-only at ``/keys``;
- ``restart`` maps to compose's policy of the same name (compose has its own
  back-off: ``backoff`` and ``backoff_max`` are not carried over);
- ``[env]`` and per-node ``env`` become each service's ``environment``;
- ``replicas = N`` (a group processor) becomes ``scale: N``: N containers of one
  service, members of the group (``--scale`` changes N).

The text is YAML (block style, scalars JSON-quoted), with no dependency to write it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from zaudio.pipeline.config import Node, Pipeline

__all__ = ["IMAGE", "service_args", "to_compose", "yaml"]

IMAGE = "${ZAUDIO_IMAGE:-zaudio:latest}"
WORKDIR = "/pipeline"
KEYS = "/keys"


def yaml(value: Any, indent: int = 0) -> list[str]:
    """``value`` (dicts, lists, scalars) as YAML lines: block style, flat lists in flow style."""
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if (isinstance(item, dict) and item) or (isinstance(item, list) and not _flat(item)):
                lines.append(f"{pad}{key}:")
                lines += yaml(item, indent + 1)
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list) and item:
                first, *rest = yaml(item, indent + 1)
                lines.append(f"{pad}- {first.lstrip()}")
                lines += rest
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(pad + _scalar(value))
    return lines


def _flat(items: list[Any]) -> bool:
    return not any(isinstance(i, dict | list) for i in items)


def _scalar(value: Any) -> str:
    """A JSON scalar, or a flat list as a JSON array: both are YAML flow style."""
    if isinstance(value, dict):
        return "{}"
    return json.dumps(value)


def _service_name(node: Node, taken: set[str]) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", node.name).lower()
    if name in taken:
        name = f"{node.kind}-{name}"
    taken.add(name)
    return name


def service_args(pipeline: Pipeline, node: Node, proxy: str) -> list[str]:
    """``node``'s command line for a container: proxy, keys and host retargeted."""
    args = list(node.args)
    for flag, value in (("--proxy", proxy), ("--keys", KEYS)):
        for i in range(len(args) - 1):
            if args[i] == flag and (flag != "--keys" or args[i + 1] == pipeline.keys):
                args[i + 1] = value
    if node.kind == "proxy":
        if "--host" in args:
            args[args.index("--host") + 1] = "0.0.0.0"
        else:
            args[1:1] = ["--host", "0.0.0.0"]
    return args


def _relative(path: Path, base: Path) -> str:
    rel = os.path.relpath(path, base)
    return rel if rel.startswith(".") else f"./{rel}"


def to_compose(pipeline: Pipeline, base: str | os.PathLike[str] = ".", image: str = IMAGE) -> str:
    """The compose file for ``pipeline``; host paths relative to ``base`` (its directory)."""
    base_dir = Path(base).resolve()
    port = pipeline.control.rpartition(":")[2]
    proxy = f"tcp://proxy:{port}" if pipeline.started_proxy else pipeline.control
    volumes = [f"{_relative(pipeline.directory, base_dir)}:{WORKDIR}"]
    if pipeline.keys:
        volumes.append(f"{_relative(Path(pipeline.keys), base_dir)}:{KEYS}:ro")
    services: dict[str, Any] = {}
    taken: set[str] = {"proxy"} if pipeline.started_proxy else set()
    for node in pipeline.nodes:
        name = "proxy" if node.kind == "proxy" else _service_name(node, taken)
        service: dict[str, Any] = {
            "image": image,
            "command": service_args(pipeline, node, proxy),
            "restart": node.restart.policy,
            "working_dir": WORKDIR,
            "volumes": volumes,
            "networks": ["bus"],
        }
        if node.env:
            service["environment"] = dict(node.env)
        if node.kind != "proxy" and pipeline.started_proxy:
            service["depends_on"] = ["proxy"]
        if node.replicas != 1:
            service["scale"] = node.replicas  # members of one group (compose 1.29 and 2)
        services[name] = service
    model = {"services": services, "networks": {"bus": {"internal": pipeline.started_proxy}}}
    header = [
        f"# The pipeline {pipeline.path.name} as a compose file (zaudio up --export compose).",
        "#   docker compose -f THIS_FILE up      # ZAUDIO_IMAGE picks the image",
        "# Each service runs the command zaudio up runs; the pipeline's folder is /pipeline.",
    ]
    return "\n".join([*header, *yaml(model)]) + "\n"
