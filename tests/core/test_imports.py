"""streamproc/core is numpy and the standard library only (docs/drift-engine.md): every import in
its source, nested and conditional ones included, is checked from the syntax tree, not by importing."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

CORE = ROOT / "streamproc" / "core"
PACKAGE = "streamproc.core"
THIRD_PARTY = frozenset({"numpy"})


def _allowed(module: str) -> bool:
    top = module.partition(".")[0]
    return (
        top in sys.stdlib_module_names
        or top in THIRD_PARTY
        or module == PACKAGE
        or module.startswith(PACKAGE + ".")
    )


def _resolve(package: str, level: int, module: str | None) -> str:
    """The absolute name of ``from <level dots><module> import ...`` inside ``package``."""
    if level == 0:
        return module or ""
    parts = package.split(".")
    if level > len(parts):
        return "." * level + (module or "")  # beyond the top package: never allowed
    base = parts[: len(parts) - level + 1]
    return ".".join(base + ([module] if module else []))


def foreign_imports(source: str, package: str = PACKAGE) -> list[str]:
    """Modules ``source`` (a module of ``package``) imports that are not numpy, the standard library or
    ``streamproc.core`` itself."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(package, node.level, node.module)
            # ``from streamproc import core`` or ``from . import x``: the names may be modules themselves
            names = [base] if node.module else [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        out += [f"line {node.lineno}: {name}" for name in names if not _allowed(name)]
    return out


def _package_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts if path.name == "__init__.py" else parts[:-1])


MODULES = sorted(CORE.rglob("*.py"))


def test_the_modules_are_found() -> None:
    assert len(MODULES) >= 5 and CORE / "book.py" in MODULES


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(CORE)))
def test_a_core_module_imports_only_numpy_and_the_standard_library(path: Path) -> None:
    assert foreign_imports(path.read_text(), _package_of(path)) == []


@pytest.mark.parametrize(
    "source",
    [
        "import numpy as np",
        "import numpy.typing as npt",
        "from numpy.typing import NDArray",
        "from __future__ import annotations",
        "import collections.abc",
        "from dataclasses import dataclass, field",
        "from streamproc.core.types import F64",
        "from streamproc.core import book",
        "from . import types",
        "from .types import PriceFlag",
    ],
)
def test_what_core_may_import(source: str) -> None:
    assert foreign_imports(source) == []


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("import redis", "redis"),
        ("import numpy, orjson", "orjson"),
        ("from aiokafka import AIOKafkaConsumer", "aiokafka"),
        ("import faust.types", "faust.types"),
        ("from streamproc.app import pipeline", "streamproc.app"),
        ("from streamproc import settings", "streamproc"),
        ("import streamproc.wire.codec", "streamproc.wire.codec"),
        ("import streamproc_core", "streamproc_core"),  # a name that merely starts like the package
        ("from .. import settings", "streamproc.settings"),
        ("from ..state.store import Store", "streamproc.state.store"),
        ("def load():\n    import orjson\n    return orjson", "orjson"),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from redis import Redis\n", "redis"),
        ("try:\n    import ujson as json\nexcept ImportError:\n    import json\n", "ujson"),
    ],
)
def test_what_core_may_not_import(source: str, found: str) -> None:
    assert [f.partition(": ")[2] for f in foreign_imports(source)] == [found]
