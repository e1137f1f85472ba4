"""The public API: what ``import zaudio`` offers, pinned, and one error tree."""

from __future__ import annotations

import inspect

import zaudio
import zaudio.errors

PUBLIC = [
    "AudioHeader",
    "CaptureError",
    "CaptureFileError",
    "ConfigError",
    "DeviceError",
    "ImportFromStringError",
    "Info",
    "Keys",
    "LocalProtocolError",
    "NodeClient",
    "ProcessorFailed",
    "ProtocolError",
    "Proxy",
    "ProxyError",
    "ProxyUnreachable",
    "Processor",
    "Publisher",
    "Recorder",
    "RemoteProtocolError",
    "RequestError",
    "RequestRefused",
    "ResultHeader",
    "Sequencer",
    "ZaudioError",
    "__version__",
    "decode",
    "keygen",
    "request",
    "results",
    "run_processor",
    "subscribe",
]


def test_all_is_pinned_and_every_name_resolves() -> None:
    assert sorted(zaudio.__all__) == sorted(PUBLIC)
    for name in zaudio.__all__:
        assert getattr(zaudio, name) is not None, name
    assert dir(zaudio) == sorted(PUBLIC)


def test_a_public_function_is_not_shadowed_by_its_module() -> None:
    # Importing a submodule sets the package attribute of its name: a module named
    # like a lazy public name would replace it (zaudio.subscribe was the module
    # once any code had imported zaudio.subscribe).
    import pkgutil

    modules = {m.name.rpartition(".")[2] for m in pkgutil.iter_modules(zaudio.__path__)}
    assert modules.isdisjoint(PUBLIC), modules & set(PUBLIC)


def test_every_exception_is_in_the_one_tree_and_exported() -> None:
    tree = {
        name: obj
        for name, obj in vars(zaudio.errors).items()
        if inspect.isclass(obj) and issubclass(obj, Exception) and obj.__module__ == "zaudio.errors"
    }
    assert all(issubclass(cls, zaudio.ZaudioError) for cls in tree.values())
    assert set(tree) <= set(zaudio.__all__)
    # Every exception class defined anywhere in the package comes from errors.py.
    import importlib
    import pkgutil

    stray = []
    for mod in pkgutil.walk_packages(zaudio.__path__, "zaudio."):
        if mod.name in ("zaudio.__main__", "zaudio.errors"):
            continue  # __main__ runs the CLI
        try:
            module = importlib.import_module(mod.name)
        except ModuleNotFoundError as exc:  # a module behind an extra not installed
            from zaudio.extras import EXTRAS

            assert (exc.name or "").partition(".")[0] in EXTRAS, exc
            continue
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, Exception) and obj.__module__ == mod.name:
                stray.append(f"{mod.name}.{name}")
    assert stray == []
    for doc in tree:
        assert doc in (zaudio.errors.__doc__ or ""), f"{doc} missing from the tree in errors.py"
