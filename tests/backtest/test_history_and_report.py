"""Price histories (CSV and synthetic) and the report's statistics on known paths."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from streamproc.backtest.engine import Costs, run
from streamproc.backtest.history import History, HistoryError, load_csv, synthetic
from streamproc.backtest.policies import Policy, standard
from streamproc.backtest.report import chart, markdown, statistics, table
from streamproc.core import Band


def test_csv_prices_get_a_spread_and_gaps_carry_forward(tmp_path) -> None:
    f = tmp_path / "p.csv"
    f.write_text("date,instrument,price\n2024-01-02,EQ,100\n2024-01-02,BOND,50\n2024-01-03,EQ,110\n")
    h = load_csv(f, half_spread_bps=10)
    assert h.instruments == ["BOND", "EQ"] and h.dates == [dt.date(2024, 1, 2), dt.date(2024, 1, 3)]
    np.testing.assert_allclose(h.mid[1], [50.0, 110.0])
    np.testing.assert_allclose(h.ask[0] / h.bid[0], [1.001 / 0.999] * 2)
    g = tmp_path / "q.csv"
    g.write_text("date,instrument,bid,ask\n2024-01-02,EQ,100,101\n2024-01-03,EQ,102,101\n")
    with pytest.raises(HistoryError, match=r"q.csv:3: need 0 < bid <= ask"):
        load_csv(g)
    h = tmp_path / "h.csv"
    h.write_text("day,instrument,price\n")
    with pytest.raises(HistoryError, match="header must be"):
        load_csv(h)


def test_synthetic_histories_are_deterministic_per_seed() -> None:
    a, b, c = (
        synthetic("volatile", years=1, seed=3),
        synthetic("volatile", years=1, seed=3),
        synthetic("volatile", years=1, seed=4),
    )
    np.testing.assert_array_equal(a.bid, b.bid)
    assert not np.array_equal(a.bid, c.bid)
    assert all(d.weekday() < 5 for d in a.dates) and len(a.dates) == 253
    with pytest.raises(HistoryError, match="unknown scenario"):
        synthetic("bubble")


def test_statistics_of_a_known_path() -> None:
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(3)]
    eq = np.array([[100.0, 50.0], [80.0, 50.0], [100.0, 50.0]])  # a 20 % dip and back
    h = History(days, ["EQ", "BOND"], eq.copy(), eq.copy())
    policies = [Policy("buy-and-hold", hold=True), Policy("abs ±1", band=Band(abs=0.01))]
    result = run(h, policies, {"EQ": 0.6, "BOND": 0.4}, Costs(fee=0.0, min_notional=0.0))
    hold, band = statistics(result)
    assert hold.final_value == pytest.approx(100_000.0) and hold.trades == 0 and hold.turnover == 0
    assert hold.max_drawdown == pytest.approx(0.12)  # 60 % of the value fell 20 %
    assert band.trades == 4 and band.events == 2  # bought the dip, sold the recovery
    assert band.final_value > hold.final_value and band.vs_hold > 0
    assert "abs ±1" in table([hold, band]) and markdown([hold, band], "t").startswith("## t")


def test_the_chart_is_written(tmp_path) -> None:
    result = run(synthetic("calm", years=1, seed=1), standard(), {"EQ": 0.6, "BOND": 0.4})
    png = chart(result, tmp_path / "c.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
