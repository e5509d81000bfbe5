"""The backtest with asset-class groups and sleeves: a group is banded as one weight, a sleeve's stop
sells it the day it triggers whatever the policy's calendar, and models load from targets documents."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import orjson
import pytest

from streamproc.backtest.engine import Costs, run
from streamproc.backtest.history import RELATED, History, synthetic
from streamproc.backtest.policies import Policy
from streamproc.backtest.portfolios import PORTFOLIOS, Portfolio, load
from streamproc.backtest.report import groups_markdown
from streamproc.core import Band
from streamproc.settings import Settings
from streamproc.wire.contract import Contract

FREE = Costs(fee=0.0, min_notional=0.0, lots={"EQ1": 1.0, "EQ2": 1.0, "BOND": 1.0, "MICRO": 1.0})
CLASSES = Portfolio("classes", {"EQ1": 0.3, "EQ2": 0.3, "BOND": 0.4}, {"equity": {"members": ["EQ1", "EQ2"]}})
SLEEVE = Portfolio(
    "sleeve",
    {"EQ1": 0.6, "BOND": 0.3, "MICRO": 0.1},
    {"microcap": {"members": ["MICRO"], "kill": {"stop_loss": 0.15}}},
)


def history(columns: dict[str, list[float]]) -> History:
    """A spread-free daily history from 2024-01-02 (no month, quarter or year turns)."""
    n = len(next(iter(columns.values())))
    days = [dt.date(2024, 1, 2) + dt.timedelta(days=i) for i in range(n)]
    prices = np.column_stack(list(columns.values()))
    return History(days, list(columns), prices.copy(), prices.copy())


def legs(result, policy: str) -> list[tuple[int, str, str, float, str | None]]:
    k = [p.name for p in result.policies].index(policy)
    return [
        (t.day, t.instrument, t.side, t.qty, t.group) for t in result.trades if t.policy == k and t.day > 0
    ]


def test_a_group_is_banded_as_one_weight() -> None:
    # 300 EQ1 + 300 EQ2 at 100, 800 BOND at 50. Day 1: EQ1 120 -> EQ1 33.96 % (3.96 pts over its 30 %)
    # but equity 66,000 / 106,000 = 62.26 %, inside ±3. Day 2: EQ2 120 too -> equity 64.29 %: back to
    # 60 % of 112,000 = 67,200, the members in their target proportions (33,600 each: sell 20 of each)
    h = history({"EQ1": [100.0, 120.0, 120.0], "EQ2": [100.0, 100.0, 120.0], "BOND": [50.0] * 3})
    policies = [Policy("abs ±3", band=Band(abs=0.03))]
    grouped = run(h, policies, CLASSES, FREE)
    assert legs(grouped, "abs ±3") == [
        (2, "EQ1", "sell", 20.0, "equity"),
        (2, "EQ2", "sell", 20.0, "equity"),
        (2, "BOND", "buy", 96.0, None),
    ]
    plain = run(h, policies, dict(CLASSES.weights), FREE)
    assert legs(plain, "abs ±3")[0][:2] == (1, "EQ1")  # per instrument, EQ1 breaches on day 1


def test_a_sleeve_stop_sells_it_that_day_whatever_the_calendar() -> None:
    # 600 EQ1 at 100, 600 BOND at 50, 1,000 MICRO at 10; MICRO 9 then 8.4: 16 % below entry on day 2
    h = history({"EQ1": [100.0] * 4, "BOND": [50.0] * 4, "MICRO": [10.0, 9.0, 8.4, 8.4]})
    policies = [
        Policy("buy-and-hold", hold=True),
        Policy("calendar year", calendar="year"),  # no new year in the history: it never looks
        Policy("abs ±5", band=Band(abs=0.05)),  # MICRO at 8.5 % is inside ±5 of 10 %
    ]
    result = run(h, policies, SLEEVE, FREE)
    assert [(s.day, result.policies[s.policy].name, s.sleeve, s.trigger) for s in result.stops] == [
        (2, "calendar year", "microcap", "stop_loss"),
        (2, "abs ±5", "microcap", "stop_loss"),
    ]
    assert result.stops[0].mark == pytest.approx(0.84)
    for policy in ("calendar year", "abs ±5"):
        sold = legs(result, policy)
        assert sold[0] == (2, "MICRO", "sell", 1000.0, "microcap")  # the whole holding, once
        assert {d for d, i, *_ in sold if i == "MICRO"} == {2}
        assert {i: side for _, i, side, *_ in sold[1:]} == {
            "EQ1": "buy",
            "BOND": "buy",
        }  # the rest of the model
    assert legs(result, "buy-and-hold") == []
    table = groups_markdown(result, "stops")
    assert "microcap 2024-01-04 stop_loss at -16.0% of entry" in table


def test_the_bundled_class_model_uses_the_synthetic_etfs() -> None:
    h = synthetic("volatile", years=1, seed=3)
    assert set(RELATED) <= set(h.instruments)
    eq, intl = (np.diff(np.log(h.mid[:, h.instruments.index(n)])) for n in ("EQ", "EQ-INTL"))
    assert np.corrcoef(eq, intl)[0, 1] > 0.8  # an ETF of the same asset class
    result = run(h, [Policy("abs ±3", band=Band(abs=0.03))], PORTFOLIOS["60-40-classes"])
    assert {t.group for t in result.trades} == {"equity", "bonds"}


def test_a_model_loads_from_a_targets_document_and_a_bad_one_says_why(tmp_path: Path) -> None:
    contract = Contract(Settings.from_env({}).schemas_dir)
    good = tmp_path / "model.json"
    doc = {"account": "m", "version": 1, "weights": {"EQ": 0.5, "BOND": 0.4}, "ts": 1, "groups": {}}
    doc["groups"] = {"g": {"members": ["EQ"], "kill": {"max_days": 60}}}
    good.write_bytes(orjson.dumps(doc))
    model = load(good, contract)
    assert (model.name, dict(model.weights), model.group_of()) == (
        "model",
        {"EQ": 0.5, "BOND": 0.4},
        {"EQ": "g"},
    )
    doc["groups"] = {"a": {"members": ["EQ"]}, "b": {"members": ["EQ"]}}
    good.write_bytes(orjson.dumps(doc))
    with pytest.raises(ValueError, match="EQ is in groups 'a' and 'b'"):
        load(good, contract)
    with pytest.raises(ValueError, match="No such file"):
        load(tmp_path / "missing.json", contract)


def test_a_calendar_stop_counts_days_from_the_first_day() -> None:
    timed = Portfolio(
        "timed", dict(SLEEVE.weights), {"microcap": {"members": ["MICRO"], "kill": {"max_days": 2}}}
    )
    h = history({"EQ1": [100.0] * 4, "BOND": [50.0] * 4, "MICRO": [10.0] * 4})
    result = run(h, [Policy("abs ±5", band=Band(abs=0.05))], timed, FREE)
    assert [(s.day, s.trigger) for s in result.stops] == [(2, "max_days")]
    assert legs(result, "abs ±5")[0] == (2, "MICRO", "sell", 1000.0, "microcap")
