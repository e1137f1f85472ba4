"""``zaudio bench``: zaudio's process layout measured against plain pyzmq in the same run.

Modules: :mod:`~zaudio.bench.runner` (what ``zaudio bench`` runs),
:mod:`~zaudio.bench.scenarios` (latency, capacity, fan-in, fan-out),
:mod:`~zaudio.bench.micro` (header codec, start-up), :mod:`~zaudio.bench.baseline`
(the plain pyzmq PUB -> ``zmq.proxy`` -> SUB processes),
:mod:`~zaudio.bench.probe` (the measuring processor both sides run),
:mod:`~zaudio.bench.multipub` (many zaudio streams from one process),
:mod:`~zaudio.bench.harness` (starting and stopping processes),
:mod:`~zaudio.bench.figures` (medians of ratios, the table). See docs/benchmarks.md.
"""
