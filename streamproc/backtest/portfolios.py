"""Model portfolios the backtest replays, written as the targets topic writes them (``weights`` and
``groups`` with bands, modes and sleeves' kill criteria), so a model tested here is the one sent live."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from streamproc.wire.codec import Rejected, decode
from streamproc.wire.contract import Contract

_BACKTEST_ACCOUNT = "backtest"


@dataclass(frozen=True)
class Portfolio:
    """Target weights per instrument and the groups (asset classes, sleeves) over them."""

    name: str
    weights: Mapping[str, float]
    groups: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def targets(self, ts_ms: int) -> dict[str, Any]:
        """The portfolio as a targets document stamped ``ts_ms`` (a sleeve without ``opened_at`` opens
        then)."""
        doc: dict[str, Any] = {
            "account": _BACKTEST_ACCOUNT,
            "version": 1,
            "weights": dict(self.weights),
            "ts": ts_ms,
        }
        if self.groups:
            doc["groups"] = {k: dict(v) for k, v in self.groups.items()}
        return doc

    def group_of(self) -> dict[str, str]:
        """Instrument -> the name of its group (instruments outside every group are absent)."""
        return {m: name for name, g in self.groups.items() for m in g["members"]}


def load(path: Path, contract: Contract) -> Portfolio:
    """A portfolio from a targets document in a JSON file, validated as the targets topic validates it
    (ValueError naming the file and what is wrong)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"--targets {path}: {exc.strerror}") from None
    try:
        account = orjson.loads(raw).get("account")
    except (orjson.JSONDecodeError, AttributeError):
        account = None
    key = account.encode() if isinstance(account, str) else None  # a targets record is keyed by it
    doc = decode(contract, "targets", key, raw)
    if isinstance(doc, Rejected):
        raise ValueError(f"--targets {path}: not a valid targets document ({doc.reason}): {doc.error}")
    return Portfolio(path.stem, doc["weights"], doc.get("groups") or {})


# The bundled models over the synthetic market's instruments (history.SYNTHETIC).
PORTFOLIOS: dict[str, Portfolio] = {
    p.name: p
    for p in (
        Portfolio("60-40", {"EQ": 0.6, "BOND": 0.4}),
        Portfolio("micro-sleeve", {"EQ": 0.55, "BOND": 0.35, "MICRO": 0.10}),
        # the seed's 60/40 as an advisor builds it: 3 equity and 2 bond ETFs, banded per asset class
        Portfolio(
            "60-40-classes",
            {"EQ": 0.25, "EQ-INTL": 0.20, "EQ-SMALL": 0.15, "BOND": 0.25, "BOND-CORP": 0.15},
            {
                "equity": {"members": ["EQ", "EQ-INTL", "EQ-SMALL"]},
                "bonds": {"members": ["BOND", "BOND-CORP"]},
            },
        ),
        # a microcap sleeve held until its stop: 15 % below entry or 20 % below its peak
        Portfolio(
            "micro-stop",
            {"EQ": 0.55, "BOND": 0.35, "MICRO": 0.10},
            {"microcap": {"members": ["MICRO"], "kill": {"stop_loss": 0.15, "max_drawdown": 0.20}}},
        ),
    )
}
