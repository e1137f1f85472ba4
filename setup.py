"""The one compiled part of zaudio, optional: zaudio/_wire*.c (see zaudio/wire.py).

Everything else is in pyproject.toml. Without a C compiler the build skips the
extension (``optional=True``) and zaudio runs the same path in Python.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "zaudio._wire",
            ["zaudio/_wire.c", "zaudio/_wire_recv.c"],
            depends=["zaudio/_wire.h"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wno-missing-field-initializers"],
        )
    ]
)
