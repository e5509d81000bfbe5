"""The metric names the worker exports, for the tests of everything that queries them."""

from __future__ import annotations

import re

from tests.conftest import ROOT

EXPORTED = "".join((ROOT / "streamproc" / "app" / f).read_text() for f in ("metrics.py", "counters.py"))


def unexported(expr: str) -> list[str]:
    """``streamproc_*`` series in a PromQL expression that the worker does not export."""
    names = re.findall(r"\b(streamproc_[a-z_]+)", expr)
    return [n for n in names if f'"{re.sub(r"_(total|bucket|count|sum)$", "", n)}"' not in EXPORTED]
