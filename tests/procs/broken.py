"""A user module whose own import fails: the error must show as it is."""

import zaudio_no_such_dependency  # noqa: F401


def fn(block):  # pragma: no cover
    return None
