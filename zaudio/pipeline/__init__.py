"""Pipelines: a whole graph of zaudio nodes from one TOML file.

``zaudio check FILE`` runs :func:`check` (parse and check, every mistake with its
line); ``zaudio up FILE`` then runs the nodes as child processes under a
:class:`Supervisor` (restart with back-off, ordered shutdown). See
docs/pipelines.md for the file format.
"""

from __future__ import annotations

from zaudio.pipeline.config import Node, Pipeline, Problem, Restart, check, load

__all__ = ["Node", "Pipeline", "Problem", "Restart", "check", "load"]
