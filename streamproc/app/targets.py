"""A validated targets document as the engine's band settings (``Book.set_targets`` arguments)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamproc.core import Band, Mode
from streamproc.core.cash import CashRules
from streamproc.core.groups import Group


def _band(doc: Mapping[str, Any] | None) -> Band | None:
    if not doc:
        return None
    rel = float(doc["rel"]) if "rel" in doc else None
    abs_ = float(doc["abs"]) if "abs" in doc else None
    return Band(abs=abs_, rel=rel)


def targets_args(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``Book.set_targets`` keyword arguments from a validated targets document (ValueError if unusable)."""
    return {
        "weights": {i: float(w) for i, w in doc["weights"].items()},
        "band": _band(doc.get("band")),
        "bands": {i: b for i, d in (doc.get("bands") or {}).items() if (b := _band(d)) is not None},
        "mode": Mode.parse(doc["mode"]) if "mode" in doc else Mode.TARGET,
        "min_trade": float(doc.get("min_trade", 0.0)),
        "liquidate": bool(doc.get("liquidate", False)),
        "cash": CashRules(
            _band(doc.get("cash_band")),
            float(doc["cash_buffer"]) if "cash_buffer" in doc else None,
        ),
        "min_trade_fraction": float(doc.get("min_trade_fraction", 0.0)),
        "groups": [
            Group(
                name,
                tuple(g["members"]),
                _band(g.get("band")),
                Mode.parse(g["mode"]) if "mode" in g else None,
            )
            for name, g in (doc.get("groups") or {}).items()
        ],
    }
