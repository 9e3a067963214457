"""Every exception class Kaizen defines derives from `KaizenError`, so callers can catch Kaizen's
errors as one family (and still by their stdlib base where they relied on one)."""

from __future__ import annotations

import importlib
import inspect

import grimp

from kaizen import KaizenError


def test_every_kaizen_exception_is_a_kaizen_error() -> None:
    graph = grimp.build_graph("kaizen", cache_dir=None)
    strays = []
    for name in sorted(m for m in graph.modules if not m.endswith("__main__")):
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (cls.__module__ == name and issubclass(cls, BaseException)
                    and not issubclass(cls, KaizenError)):
                strays.append(f"{name}.{cls.__name__}")
    assert strays == []


def test_stdlib_bases_are_kept_where_callers_rely_on_them() -> None:
    from kaizen.schemas.codec import DecodeError
    from kaizen.settings import SettingsError

    assert issubclass(DecodeError, ValueError) and issubclass(SettingsError, ValueError)
