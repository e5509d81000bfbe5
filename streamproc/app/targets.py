"""A validated targets document as the engine's band settings (``Book.set_targets`` arguments)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from streamproc.core import Band, Mode
from streamproc.core.cash import CashRules
from streamproc.core.groups import Group
from streamproc.core.sleeves import Kill


def _band(doc: Mapping[str, Any] | None) -> Band | None:
    if not doc:
        return None
    rel = float(doc["rel"]) if "rel" in doc else None
    abs_ = float(doc["abs"]) if "abs" in doc else None
    return Band(abs=abs_, rel=rel)


def _kill(doc: Mapping[str, Any] | None) -> Kill | None:
    if doc is None:
        return None
    return Kill(
        *(
            float(doc[k]) if k in doc else None
            for k in ("max_days", "stop_loss", "max_drawdown", "take_profit")
        )
    )


def _weights(doc: Mapping[str, Any], closed: Collection[str]) -> dict[str, float]:
    """The target weights, with the members of stopped sleeves at 0 and their weight given to the rest
    of the model in proportion to its targets (the cash target stays)."""
    weights = {i: float(w) for i, w in doc["weights"].items()}
    if not closed:
        return weights
    groups = doc.get("groups") or {}
    gone = {m for name in closed for m in groups[name]["members"]}
    total = sum(weights.values())
    freed = sum(w for i, w in weights.items() if i in gone)
    rest = total - freed
    scale = total / rest if rest > 0.0 else 0.0
    return {i: (0.0 if i in gone else w * scale) for i, w in weights.items()}


def targets_args(doc: Mapping[str, Any], closed: Collection[str] = ()) -> dict[str, Any]:
    """``Book.set_targets`` keyword arguments from a validated targets document (ValueError if unusable);
    ``closed``: the names of its sleeves that were stopped."""
    return {
        "weights": _weights(doc, closed),
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
                _kill(g.get("kill")),
                int(g.get("opened_at", doc["ts"])) if ("kill" in g or "opened_at" in g) else None,
                name in closed,
            )
            for name, g in (doc.get("groups") or {}).items()
        ],
    }
