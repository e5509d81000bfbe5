"""Price histories for the backtest: a CSV loader and a seeded synthetic generator with market regimes.
Event time only: a history is a sequence of dated bid/ask rows, nothing reads the wall clock."""

from __future__ import annotations

import csv
import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamproc.core.types import F64


@dataclass(frozen=True)
class History:
    """Bid and ask of ``instruments`` (columns) at each of ``dates`` (rows), forward-filled."""

    dates: list[dt.date]
    instruments: list[str]
    bid: F64
    ask: F64

    @property
    def mid(self) -> F64:
        """Mid prices."""
        out: F64 = (self.bid + self.ask) * 0.5
        return out

    @property
    def years(self) -> float:
        """Calendar length in years (for annualising)."""
        return max((self.dates[-1] - self.dates[0]).days, 1) / 365.25


class HistoryError(ValueError):
    """A price file cannot be used; the message names the line and what is wrong."""


def load_csv(path: Path, half_spread_bps: float = 5.0) -> History:
    """Rows ``date,instrument,price`` or ``date,instrument,bid,ask`` (header required; date as
    YYYY-MM-DD or an ISO date-time). A price without bid/ask gets ``half_spread_bps`` either side.
    Missing days of an instrument carry its last price forward; it must be priced on the first date."""
    rows: dict[dt.date, dict[str, tuple[float, float]]] = {}
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields = set(reader.fieldnames or ())
        if not {"date", "instrument"} <= fields or not ({"price"} <= fields or {"bid", "ask"} <= fields):
            raise HistoryError(f"{path}: header must be date,instrument,price or date,instrument,bid,ask")
        for n, rec in enumerate(reader, start=2):
            try:
                day = dt.datetime.fromisoformat(rec["date"]).date()
                if rec.get("bid") and rec.get("ask"):
                    bid, ask = float(rec["bid"]), float(rec["ask"])
                else:
                    price = float(rec["price"])
                    bid, ask = price * (1 - half_spread_bps / 1e4), price * (1 + half_spread_bps / 1e4)
            except (KeyError, TypeError, ValueError) as exc:
                raise HistoryError(f"{path}:{n}: {exc}") from None
            if not 0 < bid <= ask:
                raise HistoryError(f"{path}:{n}: need 0 < bid <= ask, got {bid} / {ask}")
            rows.setdefault(day, {})[rec["instrument"]] = (bid, ask)
    if len(rows) < 2:
        raise HistoryError(f"{path}: need prices on at least two dates")
    dates = sorted(rows)
    names = sorted({i for day in rows.values() for i in day})
    missing = [i for i in names if i not in rows[dates[0]]]
    if missing:
        raise HistoryError(f"{path}: {', '.join(missing)} not priced on the first date {dates[0]}")
    bids = np.empty((len(dates), len(names)))
    asks = np.empty_like(bids)
    for t, day in enumerate(dates):
        for j, name in enumerate(names):
            b, a = rows[day].get(name, (bids[t - 1, j], asks[t - 1, j]))
            bids[t, j], asks[t, j] = b, a
    return History(dates, names, bids, asks)


@dataclass(frozen=True)
class Regime:
    """Annual drift and volatility per instrument for a stretch of trading days."""

    days: int
    drift: dict[str, float]
    vol: dict[str, float]


# Instruments of the synthetic market: (start price, half spread in bps).
SYNTHETIC = {"EQ": (100.0, 1.0), "BOND": (50.0, 5.0), "MICRO": (10.0, 30.0)}
# ETFs of EQ's or BOND's asset class (for the class-banded models): (class, idiosyncratic annual vol,
# start price, half spread in bps). Each is its class's path times a driftless GBM of its own drawn from a
# separate random stream, so EQ, BOND and MICRO are the same under a seed with or without them.
RELATED = {
    "EQ-INTL": ("EQ", 0.10, 40.0, 2.0),
    "EQ-SMALL": ("EQ", 0.14, 30.0, 3.0),
    "BOND-CORP": ("BOND", 0.03, 25.0, 6.0),
}
_CALM = {"EQ": 0.12, "BOND": 0.04, "MICRO": 0.25}


def _regimes(years: int) -> dict[str, list[Regime]]:
    d = 252 * years
    return {
        "calm": [Regime(d, {"EQ": 0.06, "BOND": 0.03, "MICRO": 0.07}, _CALM)],
        "volatile": [
            Regime(d, {"EQ": 0.06, "BOND": 0.03, "MICRO": 0.07}, {"EQ": 0.32, "BOND": 0.08, "MICRO": 0.55})
        ],
        "trending": [
            Regime(d, {"EQ": 0.16, "BOND": 0.02, "MICRO": 0.18}, {"EQ": 0.15, "BOND": 0.05, "MICRO": 0.3})
        ],
        "crash-and-recover": [
            Regime(d // 3, {"EQ": 0.07, "BOND": 0.03, "MICRO": 0.08}, _CALM),
            Regime(63, {"EQ": -1.8, "BOND": 0.05, "MICRO": -2.4}, {"EQ": 0.45, "BOND": 0.08, "MICRO": 0.7}),
            Regime(252, {"EQ": 0.45, "BOND": 0.02, "MICRO": 0.6}, {"EQ": 0.25, "BOND": 0.06, "MICRO": 0.45}),
            Regime(max(d - d // 3 - 315, 21), {"EQ": 0.07, "BOND": 0.03, "MICRO": 0.08}, _CALM),
        ],
        # two volatile assets with no drift and nowhere to go: the textbook case for rebalancing
        "sideways": [
            Regime(d, {"EQ": 0.0, "BOND": 0.0, "MICRO": 0.0}, {"EQ": 0.45, "BOND": 0.45, "MICRO": 0.6})
        ],
    }


SCENARIOS = tuple(_regimes(1))


def synthetic(
    scenario: str, *, years: int = 10, seed: int = 7, start: dt.date = dt.date(2016, 1, 4)
) -> History:
    """Business-day GBM prices of EQ, BOND and MICRO through the scenario's regimes, and of the ETFs
    ``RELATED`` to EQ and BOND (deterministic)."""
    regimes = _regimes(years).get(scenario)
    if regimes is None:
        raise HistoryError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    rng = np.random.default_rng(seed)
    names = list(SYNTHETIC)
    steps = []
    for r in regimes:
        mu = np.array([r.drift[n] for n in names])
        sigma = np.array([r.vol[n] for n in names])
        shocks = rng.standard_normal((r.days, len(names)))
        steps.append((mu - 0.5 * sigma**2) / 252 + sigma / math.sqrt(252) * shocks)
    log_paths = np.vstack([np.zeros((1, len(names))), np.cumsum(np.vstack(steps), axis=0)])
    mid = np.array([SYNTHETIC[n][0] for n in names]) * np.exp(log_paths)
    half = np.array([SYNTHETIC[n][1] for n in names]) / 1e4
    related = np.random.default_rng([seed, 0xE7F])
    extra, extra_half = [], []
    for base, vol, start_price, half_bps in RELATED.values():
        shocks = related.standard_normal(len(mid) - 1)
        own = np.concatenate([[0.0], np.cumsum(-0.5 * vol**2 / 252 + vol / math.sqrt(252) * shocks)])
        b = names.index(base)
        extra.append(start_price * mid[:, b] / mid[0, b] * np.exp(own))
        extra_half.append(half_bps / 1e4)
    names += list(RELATED)
    mid = np.column_stack([mid, *extra])
    half = np.concatenate([half, extra_half])
    dates: list[dt.date] = []
    day = start
    while len(dates) < len(mid):
        if day.weekday() < 5:
            dates.append(day)
        day += dt.timedelta(days=1)
    return History(dates, names, mid * (1 - half), mid * (1 + half))
