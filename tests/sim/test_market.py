"""The simulated market: tiers and names, GBM mids, quotes on the wire contract with consecutive seqs,
each fault kind, accounts opened on target, and determinism under the seed."""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

import numpy as np
import orjson
import pytest

from streamproc.sim.market import (
    CASH,
    MODELS,
    TIERS,
    TRADING_DAY_S,
    TRADING_YEAR_S,
    Faults,
    Market,
    Part,
    tier_counts,
)
from streamproc.wire.codec import Rejected, decode
from streamproc.wire.contract import Contract
from tests.conftest import ROOT

CONTRACT = Contract(ROOT / "schemas")
NOW = 1_795_000_000_000


def _docs(topic: str, records: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    """Decode records as the worker does; every one must pass."""
    out = []
    for key, value in records:
        doc = decode(CONTRACT, topic, key, value)
        assert not isinstance(doc, Rejected), (value, doc)
        out.append(doc)
    return out


def _seqs(records: list[tuple[bytes, bytes]]) -> dict[str, list[int]]:
    by: dict[str, list[int]] = defaultdict(list)
    for _key, value in records:
        doc = orjson.loads(value)
        by[doc["instrument"]].append(doc["seq"])
    return by


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 50, 100, 2000])
def test_tier_counts_follow_the_mix_and_give_each_tier_one_from_four_instruments(n: int) -> None:
    counts = tier_counts(n)
    assert sum(counts) == n
    if n >= 4:
        assert min(counts) >= 1
    assert tier_counts(100) == [40, 25, 15, 20]


def test_names_tiers_and_reference_records() -> None:
    m = Market(20, seed=3, max_quote_age_s=5)
    assert m.names[:2] == ["LC-0001", "LC-0002"] and m.names[-1] == "MC-0004"
    assert m.of_tier("bond") == ["BD-0001", "BD-0002", "BD-0003", "BD-0004", "BD-0005"]
    docs = _docs("instruments", m.reference_records())
    assert [d["instrument"] for d in docs] == m.names
    by_tier = {d["tier"]: d for d in docs}
    assert set(by_tier) == {"large", "bond", "dividend", "micro"}
    assert by_tier["micro"]["lot"] == "1" and by_tier["bond"]["lot"] == "0.01"
    assert all(d["max_quote_age_s"] == 5 for d in docs)
    default = _docs("instruments", Market(4, seed=3).reference_records())
    assert {d["tier"]: d["max_quote_age_s"] for d in default} == {t.name: t.max_quote_age_s for t in TIERS}


def test_opening_prices_lie_in_each_tiers_range() -> None:
    m = Market(400, seed=1)
    for name, tier, mid in zip(m.names, m.tiers, m.mid.tolist(), strict=True):
        lo, hi = tier.price_range
        assert lo <= mid <= hi, name


def test_quotes_validate_with_consecutive_seqs_from_one_and_the_tiers_spread() -> None:
    m = Market(30, seed=2)
    records = m.opening_quotes(NOW)
    for _ in range(40):
        m.step(0.02)
        records += m.quotes(25, NOW)
    docs = _docs("quotes", records)
    assert all(d["ts"] == NOW for d in docs)
    for name, seqs in _seqs(records).items():
        assert seqs == list(range(1, len(seqs) + 1)), name
    for d in docs:
        tier = m.tiers[m.index[d["instrument"]]]
        mid = (d["bid"] + d["ask"]) / 2
        assert 0 < d["bid"] < d["ask"]
        # bid rounded down, ask up to 1e-4: the spread is the tier's plus at most two ticks
        assert d["ask"] - d["bid"] == pytest.approx(mid * tier.spread_bps / 1e4, abs=2.01e-4)


def test_quotes_go_round_robin_so_every_instrument_quotes_once_per_round() -> None:
    m = Market(12, seed=5)
    rounds = [m.quotes(12, NOW) for _ in range(3)]
    for records in rounds:
        assert sorted(k.decode() for k, _ in records) == sorted(m.names)
    assert [k for k, _ in rounds[0]] != [k for k, _ in rounds[1]]  # shuffled each round
    partial = m.quotes(5, NOW) + m.quotes(7, NOW)  # a round split across calls
    assert sorted(k.decode() for k, _ in partial) == sorted(m.names)


def test_mids_follow_gbm_with_the_tiers_volatility_scaled_by_time_scale() -> None:
    m = Market(400, seed=11, time_scale=TRADING_DAY_S)
    steps, dt_s = 250, 1.0  # one trading day a step
    logs = [np.log(m.mid)]
    for _ in range(steps):
        m.step(dt_s)
        logs.append(np.log(m.mid))
    returns = np.diff(np.array(logs), axis=0)
    dt_year = dt_s * TRADING_DAY_S / TRADING_YEAR_S
    for t_idx, tier in enumerate(TIERS):
        cols = m.tier_index == t_idx
        realised = returns[:, cols].std() / math.sqrt(dt_year)
        assert realised == pytest.approx(tier.vol, rel=0.1), tier.name


def test_step_of_zero_changes_nothing() -> None:
    m = Market(10, seed=1)
    before = m.mid.copy()
    m.step(0.0)
    assert np.array_equal(before, m.mid)


def test_same_seed_same_bytes_and_another_seed_differs() -> None:
    def run(seed: int) -> list[tuple[bytes, bytes]]:
        m = Market(40, seed=seed, time_scale=1000, faults=Faults(skip_seq=0.1, crossed=0.1, malformed=0.1))
        out = m.reference_records() + m.opening_quotes(NOW)
        for _ in range(20):
            m.step(0.02)
            out += m.quotes(30, NOW)
        opening = m.book(30, now_ms=NOW)
        return out + opening.targets + opening.positions

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_crossed_quotes_have_bid_above_ask_at_about_their_probability() -> None:
    m = Market(50, seed=1, faults=Faults(crossed=0.2))
    records = m.quotes(5000, NOW)
    crossed = [v for _, v in records if orjson.loads(v)["bid"] > orjson.loads(v)["ask"]]
    assert len(crossed) == m.injected["crossed"]
    assert 800 < len(crossed) < 1200
    key, value = next((k, v) for k, v in records if v in crossed)
    rejected = decode(CONTRACT, "quotes", key, value)
    assert isinstance(rejected, Rejected) and rejected.reason == "semantic"


def test_skipped_seqs_make_gaps_of_one_to_five() -> None:
    m = Market(10, seed=1, faults=Faults(skip_seq=0.1))
    records = m.quotes(2000, NOW)
    jumps = Counter()
    for seqs in _seqs(records).values():
        assert seqs[0] >= 1
        jumps.update(b - a for a, b in itertools.pairwise(seqs))
    gaps = {j: n for j, n in jumps.items() if j > 1}
    assert set(gaps) <= {2, 3, 4, 5, 6} and len(gaps) == 5
    assert sum(gaps.values()) <= m.injected["skip_seq"]


def test_malformed_records_are_garbage_of_each_kind_and_take_no_seq() -> None:
    m = Market(10, seed=4, faults=Faults(malformed=0.3))
    records = m.quotes(1000, NOW)
    reasons = Counter()
    good = []
    for key, value in records:
        doc = decode(CONTRACT, "quotes", key, value)
        if isinstance(doc, Rejected):
            reasons[doc.reason] += 1
        else:
            good.append((key, value))
    assert reasons["invalid_json"] == m.injected["malformed_json"] > 0
    assert reasons["schema"] == m.injected["malformed_missing"] + m.injected["malformed_type"]
    assert m.injected["malformed_missing"] > 0 and m.injected["malformed_type"] > 0
    for seqs in _seqs(good).values():
        assert seqs == list(range(1, len(seqs) + 1))


def test_an_outlier_is_one_quote_off_by_the_jump_and_the_next_is_back() -> None:
    m = Market(1, seed=1, faults=Faults(outlier=0.5))
    mid = float(m.mid[0])
    docs = _docs("quotes", m.quotes(400, NOW))
    mids = [(d["bid"] + d["ask"]) / 2 / mid for d in docs]
    jumped = [x for x in mids if abs(x - 1) > 0.01]
    assert len(jumped) == m.injected["outlier"]
    assert all(x == pytest.approx(1.4, rel=1e-3) or x == pytest.approx(0.6, rel=1e-3) for x in jumped)
    assert {round(x, 1) for x in jumped} == {0.6, 1.4}
    assert all(abs(x - 1) < 0.01 for x in mids if x not in jumped)  # the mid itself never moved


def test_stopped_instruments_go_quiet_from_the_given_time_and_faults_switch_at_runtime() -> None:
    m = Market(8, seed=1)
    m.faults = Faults(stop=frozenset({"LC-0001", "MC-0001"}), stop_from_ms=NOW + 1000)
    before = {k.decode() for k, _ in m.quotes(80, NOW)}
    assert {"LC-0001", "MC-0001"} <= before
    after = Counter(k.decode() for k, _ in m.quotes(80, NOW + 1000))
    assert set(after) == set(m.names) - {"LC-0001", "MC-0001"}
    assert max(after.values()) - min(after.values()) <= 1  # the round-robin goes on over the others
    m.faults = Faults()
    assert "LC-0001" in {k.decode() for k, _ in m.quotes(8, NOW + 2000)}


def test_faults_reject_probabilities_outside_zero_to_one() -> None:
    with pytest.raises(ValueError, match="crossed"):
        Faults(crossed=1.5)
    with pytest.raises(ValueError, match="outlier_jump"):
        Faults(outlier_jump=1.0)


def test_book_opens_accounts_on_target_with_consecutive_seqs_and_cash_last() -> None:
    m = Market(60, seed=9)
    opening = m.book(30, now_ms=NOW, capital_range=(50_000, 50_000))
    targets = _docs("targets", opening.targets)
    positions = _docs("positions", opening.positions)
    assert [t["account"] for t in targets] == [f"ACC-{i:06d}" for i in range(1, 31)]
    assert [t["account"] for t in targets] == list(opening.models)
    by_account: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in positions:
        by_account[p["account"]].append(p)
    for t in targets:
        weights = t["weights"]
        rows = by_account[t["account"]]
        assert math.fsum(weights.values()) <= 1
        assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
        assert [r["instrument"] for r in rows] == [*weights, CASH]
        qty = {r["instrument"]: Decimal(r["qty"]) for r in rows}
        value = {name: float(q) * (1.0 if name == CASH else m.mid[m.index[name]]) for name, q in qty.items()}
        assert sum(value.values()) == pytest.approx(50_000, abs=0.01)  # rounded to lots, the rest in cash
        for name, w in weights.items():
            i = m.index[name]
            lot = Decimal(m.tiers[i].lot)
            assert qty[name] % lot == 0
            assert 0 <= w * 50_000 - value[name] <= float(lot) * m.mid[i] + 1e-6


def test_models_pick_instruments_of_their_tiers_and_differ_across_accounts() -> None:
    m = Market(100, seed=1)
    opening = m.book(90, now_ms=NOW)
    spec_of = {s.name: s for s in MODELS}
    seen: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for account, model in opening.models.items():
        spec = spec_of[model.name]
        tiers = Counter(m.tiers[m.index[name]].name for name in model.weights)
        assert tiers == {s.tier: s.count for s in spec.parts}, account
        for part in spec.parts:
            total = sum(w for name, w in model.weights.items() if m.tiers[m.index[name]].name == part.tier)
            assert total == pytest.approx(part.weight, abs=1e-5)
        seen[model.name].add(tuple(model.weights))
    assert {name: len(sets) > 20 for name, sets in seen.items()} == {s.name: True for s in MODELS}
    assert Counter(model.name for model in opening.models.values()) == {s.name: 30 for s in MODELS}


def test_microcaps_carry_explicit_two_point_bands() -> None:
    m = Market(40, seed=1)
    targets = _docs("targets", m.book(3, now_ms=NOW).targets)
    sleeve = next(t for t in targets if t["mode"] == "half")
    micro = [n for n in sleeve["weights"] if n.startswith("MC-")]
    assert micro and sleeve["bands"] == {n: {"abs": 0.02} for n in micro}
    assert sleeve["band"] == {"abs": 0.03}
    assert all("bands" not in t for t in targets if t is not sleeve)


def test_the_60_40_is_banded_per_asset_class_and_the_microcap_sleeve_has_a_stop() -> None:
    m = Market(60, seed=2)
    targets = {t["account"]: t for t in _docs("targets", m.book(6, now_ms=NOW).targets)}
    by_model = {model.name: targets[a] for a, model in m.book(6, now_ms=NOW).models.items()}
    balanced = by_model["balanced-60-40"]
    equity, bonds = balanced["groups"]["equity"], balanced["groups"]["bonds"]
    assert [len(equity["members"]), len(bonds["members"])] == [3, 2]
    assert all(n.startswith("LC-") for n in equity["members"]) and all(
        n.startswith("BD-") for n in bonds["members"]
    )
    assert math.fsum(balanced["weights"][n] for n in equity["members"]) == pytest.approx(0.60, abs=1e-5)
    assert equity["band"] == bonds["band"] == {"abs": 0.03} and "kill" not in equity
    sleeve = by_model["microcap-sleeve"]["groups"]["microcap"]
    assert len(sleeve["members"]) == 4 and all(n.startswith("MC-") for n in sleeve["members"])
    assert sleeve["opened_at"] == NOW
    assert sleeve["kill"] == {"max_days": 60, "stop_loss": 0.15, "max_drawdown": 0.20}
    assert "groups" not in by_model["micro-yield"]


def test_a_part_with_kill_criteria_must_be_a_group() -> None:
    with pytest.raises(ValueError, match="must name its group"):
        Part("micro", 4, 0.2, kill={"max_days": 30})


def test_a_model_needing_a_missing_tier_is_refused() -> None:
    with pytest.raises(ValueError, match="micro"):
        Market(2, seed=1).book(3, now_ms=NOW)


def test_resume_continues_seqs_and_mids_of_known_instruments() -> None:
    m = Market(4, seed=1)
    opening_bond = float(m.mid[m.index["BD-0001"]])
    assert m.resume({"LC-0001": (41, 123.0), "BD-0001": (3, None), "XX-1": (9, 1.0)}) == 2
    docs = {d["instrument"]: d for d in _docs("quotes", m.opening_quotes(NOW))}
    assert docs["LC-0001"]["seq"] == 42
    assert (docs["LC-0001"]["bid"] + docs["LC-0001"]["ask"]) / 2 == pytest.approx(123.0, abs=1e-3)
    assert docs["BD-0001"]["seq"] == 4
    assert (docs["BD-0001"]["bid"] + docs["BD-0001"]["ask"]) / 2 == pytest.approx(opening_bond, abs=1e-2)
    assert docs["DV-0001"]["seq"] == 1
