"""A simulated market for the simulator and the demo: instruments in four tiers whose mids follow geometric
Brownian motion, quotes with per-instrument seqs and injectable faults, and accounts opened on model
portfolios. Pure and deterministic under a seed (numpy, stdlib and orjson only; no I/O)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Record = tuple[bytes, bytes]

TRADING_DAY_S = 23_400.0  # 6.5 h: ``time_scale=TRADING_DAY_S`` makes one real second one trading day
TRADING_YEAR_S = 252 * TRADING_DAY_S
CASH = "CASH"
_OUTLIER_JUMP = 0.4
_MAX_SKIP = 5
_MALFORMED_KINDS = ("malformed_json", "malformed_missing", "malformed_type")


@dataclass(frozen=True, slots=True)
class Tier:
    """One class of instruments: how they move, how wide they are quoted, how they trade."""

    name: str
    prefix: str
    share: float  # of the market's instruments
    vol: float  # annual volatility
    drift: float  # annual drift
    spread_bps: float
    lot: str
    price_range: tuple[float, float]
    max_quote_age_s: float
    depth: tuple[float, float] | None = None  # shares displayed each side (drawn per instrument); None: deep


TIERS: tuple[Tier, ...] = (
    Tier("large", "LC", 0.40, 0.18, 0.07, 2.0, "0.0001", (50.0, 300.0), 30.0),
    Tier("bond", "BD", 0.25, 0.05, 0.03, 5.0, "0.01", (20.0, 110.0), 30.0),
    Tier("dividend", "DV", 0.15, 0.12, 0.05, 4.0, "0.0001", (20.0, 150.0), 30.0),
    Tier("micro", "MC", 0.20, 0.60, 0.08, 40.0, "1", (1.0, 20.0), 60.0, (500.0, 5000.0)),
)
_TIER_INDEX = {t.name: i for i, t in enumerate(TIERS)}


@dataclass(frozen=True, slots=True)
class Faults:
    """Bad data to inject, each kind with its probability per quote (deterministic under the seed).

    ``stop``: instruments that stop quoting once ``now_ms >= stop_from_ms`` (0: at once). ``skip_seq``: the
    seq jumps 1-5 ahead (a gap). ``crossed``: bid > ask. ``outlier``: the quoted mid is off by
    ±``outlier_jump`` (40%) for this one quote. ``malformed``: the record is garbage (invalid JSON, a missing
    field or a wrong type) and takes no seq.
    """

    stop: frozenset[str] = frozenset()
    stop_from_ms: int = 0
    skip_seq: float = 0.0
    crossed: float = 0.0
    outlier: float = 0.0
    malformed: float = 0.0
    outlier_jump: float = _OUTLIER_JUMP

    def __post_init__(self) -> None:
        for name in ("skip_seq", "crossed", "outlier", "malformed"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"Faults.{name} = {p}: a probability must be in [0, 1]")
        if not 0.0 < self.outlier_jump < 1.0:
            raise ValueError(f"Faults.outlier_jump = {self.outlier_jump}: must be in (0, 1)")


@dataclass(frozen=True, slots=True)
class Part:
    """Part of a model: ``weight`` split equally over ``count`` instruments of ``tier``; with ``group``
    the part is one group of the targets (an asset class banded as one weight: ``group_band``, or the
    deployment's), and with ``kill`` a sleeve (opened when the account opens)."""

    tier: str
    count: int
    weight: float
    group: str | None = None
    group_band: Mapping[str, float] | None = None
    kill: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        if self.kill is not None and self.group is None:
            raise ValueError(f"a {self.tier} part with kill criteria must name its group (a sleeve)")


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A model portfolio by tier; each account picks its own instruments for the parts."""

    name: str
    parts: tuple[Part, ...]
    band: Mapping[str, float]
    mode: str
    min_trade: float
    tier_bands: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Model:
    """An account's concrete model: target weights per instrument, bands, mode, minimum trade, and its
    groups as the targets topic writes them (members, band, and a sleeve's ``opened_at`` and ``kill``)."""

    name: str
    weights: Mapping[str, float]
    band: Mapping[str, float]
    mode: str
    min_trade: float
    bands: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    groups: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


# The 60/40 is the seed's example as advisors build it: 3 equity ETFs and 2 bond ETFs banded per asset
# class (±3 points of 60 % and of 40 %), not per ETF. The microcap sleeve states its ±2 point bands per
# microcap in the targets' `bands` rather than relying on the worker's tier default, so the accounts keep
# them whatever the deployment's tier policy is; it is stopped after 60 days, 15 % below its entry value
# or 20 % below its peak (the microcap seed's "strict calendar" and "hard stop"; microcaps move ~4 % a day).
MICROCAP_KILL = {"max_days": 60, "stop_loss": 0.15, "max_drawdown": 0.20}
MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "balanced-60-40",
        (
            Part("large", 3, 0.60, group="equity", group_band={"abs": 0.03}),
            Part("bond", 2, 0.40, group="bonds", group_band={"abs": 0.03}),
        ),
        {"abs": 0.03},
        "target",
        25,
    ),
    ModelSpec("micro-yield", (Part("bond", 2, 0.70), Part("dividend", 2, 0.25)), {"abs": 0.03}, "edge", 25),
    ModelSpec(
        "microcap-sleeve",
        (
            Part("large", 2, 0.80),
            Part("micro", 4, 0.20, group="microcap", group_band={"abs": 0.03}, kill=MICROCAP_KILL),
        ),
        {"abs": 0.03},
        "half",
        25,
        {"micro": {"abs": 0.02}},
    ),
)


@dataclass(frozen=True, slots=True)
class Opening:
    """Accounts opened on target: their models and the targets and positions records to publish."""

    models: Mapping[str, Model]
    targets: list[Record]
    positions: list[Record]


def tier_counts(n: int) -> list[int]:
    """Instruments per tier for a market of ``n`` (largest remainders; at least one each when n >= 4)."""
    raw = [n * t.share for t in TIERS]
    counts = [math.floor(x) for x in raw]
    by_fraction = sorted(range(len(TIERS)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in by_fraction[: n - sum(counts)]:
        counts[i] += 1
    if n >= len(TIERS):
        for i in range(len(TIERS)):
            if counts[i] == 0:
                counts[max(range(len(TIERS)), key=lambda j: counts[j])] -= 1
                counts[i] = 1
    return counts


def _decimals(step: str) -> int:
    return len(step.partition(".")[2])


def _floor_to(x: float, step: str) -> str:
    """``x`` rounded down to a multiple of ``step``, as a plain decimal string."""
    lots = math.floor(x / float(step) * (1 + 1e-12))
    return f"{max(lots, 0) * float(step):.{_decimals(step)}f}"


def _split(weight: float, k: int) -> float:
    """One of ``k`` equal parts of ``weight``, rounded down to 1e-6 so the parts never sum above it."""
    return math.floor(weight / k * 1e6 + 1e-6) / 1e6


class Market:
    """Instruments, their mids (GBM, stepped in real seconds times ``time_scale``) and quote generation."""

    def __init__(
        self,
        n_instruments: int,
        seed: int,
        *,
        time_scale: float = 1.0,
        max_quote_age_s: float | None = None,
        faults: Faults | None = None,
        calendar: str | None = None,
    ) -> None:
        if n_instruments < 1:
            raise ValueError("a market needs at least one instrument")
        self.seed = seed
        self.time_scale = time_scale
        self.calendar = calendar  # every instrument's trading calendar (None: 24/7, not sent)
        setup, self._price_rng, self._order_rng, self._fault_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
        )
        counts = tier_counts(n_instruments)
        self.tier_index: I64 = np.repeat(np.arange(len(TIERS), dtype=np.int64), counts)
        self.names = [f"{t.prefix}-{k + 1:04d}" for t, c in zip(TIERS, counts, strict=True) for k in range(c)]
        self.keys = [n.encode() for n in self.names]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.tiers = [TIERS[i] for i in self.tier_index.tolist()]
        lo = np.array([t.price_range[0] for t in self.tiers])
        hi = np.array([t.price_range[1] for t in self.tiers])
        self.mid: F64 = np.round(setup.uniform(lo, hi), 2)
        self._floor, self._cap = lo / 20, hi * 20
        # thin books (microcaps) quote their displayed sizes; drawn after the mids, so those stay as seeded
        d_lo = np.array([t.depth[0] if t.depth else np.nan for t in self.tiers])
        d_hi = np.array([t.depth[1] if t.depth else np.nan for t in self.tiers])
        self.depth: F64 = np.where(
            np.isnan(d_lo), np.nan, np.round(setup.uniform(np.nan_to_num(d_lo), np.nan_to_num(d_hi)))
        )
        self._vol = np.array([t.vol for t in self.tiers])
        self._drift = np.array([t.drift for t in self.tiers])
        self._spread = np.array([t.spread_bps for t in self.tiers])
        self.max_quote_age_s = [max_quote_age_s or t.max_quote_age_s for t in self.tiers]
        self.seq = [0] * n_instruments
        self.injected: dict[str, int] = {}
        self.faults = faults or Faults()  # assign a new Faults to change them while running
        self._active: I64 = np.empty(0, dtype=np.int64)
        self._cycle: I64 = np.empty(0, dtype=np.int64)
        self._cycle_of: tuple[Faults, bool] | None = None
        self._cursor = 0

    def of_tier(self, tier: str) -> list[str]:
        """The instruments of ``tier``, in order."""
        return [n for n, t in zip(self.names, self.tiers, strict=True) if t.name == tier]

    def step(self, dt_s: float) -> None:
        """Advance every mid by ``dt_s`` real seconds (``dt_s * time_scale`` of trading time)."""
        if dt_s <= 0:
            return
        dt = dt_s * self.time_scale / TRADING_YEAR_S
        z = self._price_rng.standard_normal(len(self.names))
        growth = (self._drift - 0.5 * self._vol**2) * dt + self._vol * math.sqrt(dt) * z
        self.mid = np.clip(self.mid * np.exp(growth), self._floor, self._cap)

    def resume(self, last: Mapping[str, tuple[int, float | None]]) -> int:
        """Continue instruments from their last published (seq, mid) (mid None: keep the seeded one), so a
        restarted simulator's quotes are not taken for duplicates; returns how many it knew."""
        known = 0
        for name, (seq, mid) in last.items():
            i = self.index.get(name)
            if i is None:
                continue
            known += 1
            self.seq[i] = max(self.seq[i], seq)
            if mid is not None:
                self.mid[i] = min(max(mid, self._floor[i]), self._cap[i])
        return known

    def reference_records(self) -> list[Record]:
        """The instruments topic's records: tier, lot, max quote age (and calendar) of every instrument."""
        venue = {"calendar": self.calendar} if self.calendar else {}
        return [
            (
                key,
                orjson.dumps(
                    {"instrument": name, "lot": tier.lot, "tier": tier.name, "max_quote_age_s": age, **venue}
                ),
            )
            for key, name, tier, age in zip(
                self.keys, self.names, self.tiers, self.max_quote_age_s, strict=True
            )
        ]

    def opening_quotes(self, now_ms: int) -> list[Record]:
        """One clean quote for every instrument, in order (no faults)."""
        n = len(self.names)
        none = np.zeros(n, dtype=bool)
        return self._build(
            np.arange(n, dtype=np.int64), now_ms, none, none, np.ones(n), np.zeros(n, np.int64)
        )

    def quotes(self, n: int, now_ms: int) -> list[Record]:
        """``n`` quotes of instruments taken in a shuffled round-robin (each quotes once per round), with
        the current faults injected."""
        idx = self._next_instruments(n, now_ms)
        k = len(idx)
        if k == 0:
            return []
        f = self.faults
        u = self._fault_rng.random((4, k))  # always drawn, so toggling faults keeps the sequence aligned
        malformed = u[3] < f.malformed
        skip = (u[0] < f.skip_seq) & ~malformed
        crossed = (u[1] < f.crossed) & ~malformed
        outlier = (u[2] < f.outlier) & ~malformed
        factor = np.where(
            outlier, np.where(u[2] < f.outlier / 2, 1 + f.outlier_jump, 1 - f.outlier_jump), 1.0
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            extra = np.where(skip, 1 + np.floor(u[0] / f.skip_seq * _MAX_SKIP), 0).astype(np.int64)
            kinds = np.where(malformed, np.floor(u[3] / f.malformed * 3), 0).astype(np.int64)
        self._count("skip_seq", int(skip.sum()))
        self._count("crossed", int(crossed.sum()))
        self._count("outlier", int(outlier.sum()))
        for j, kind in enumerate(_MALFORMED_KINDS):
            self._count(kind, int((malformed & (kinds == j)).sum()))
        return self._build(idx, now_ms, crossed, malformed, factor, extra, kinds)

    def _count(self, kind: str, n: int) -> None:
        if n:
            self.injected[kind] = self.injected.get(kind, 0) + n

    def _next_instruments(self, n: int, now_ms: int) -> I64:
        """The next ``n`` instruments of the shuffled round-robin over the ones still quoting."""
        f = self.faults
        stopping = bool(f.stop) and now_ms >= f.stop_from_ms
        if self._cycle_of != (f, stopping):
            self._cycle_of = (f, stopping)
            self._active = np.array(
                [i for i, name in enumerate(self.names) if not (stopping and name in f.stop)],
                dtype=np.int64,
            )
            self._cycle, self._cursor = np.empty(0, dtype=np.int64), 0
        if n <= 0 or len(self._active) == 0:
            return np.empty(0, dtype=np.int64)
        parts = [self._cycle[self._cursor : self._cursor + n]]
        taken = len(parts[0])
        self._cursor += taken
        while taken < n:
            self._cycle, self._cursor = self._order_rng.permutation(self._active), 0
            part = self._cycle[: n - taken]
            parts.append(part)
            self._cursor = len(part)
            taken += len(part)
        return np.concatenate(parts)

    def _build(
        self,
        idx: I64,
        now_ms: int,
        crossed: npt.NDArray[np.bool_],
        malformed: npt.NDArray[np.bool_],
        factor: F64,
        extra: I64,
        kinds: I64 | None = None,
    ) -> list[Record]:
        """The quote records of ``idx`` (vectorized prices; one dict and dumps per record)."""
        mid = self.mid[idx] * factor
        half = mid * self._spread[idx] / 2e4
        bid = np.floor((mid - half) * 1e4) / 1e4
        ask = np.ceil((mid + half) * 1e4) / 1e4
        bid, ask = np.where(crossed, ask, bid), np.where(crossed, bid, ask)
        out: list[Record] = []
        seq = self.seq
        depth = self.depth.tolist()
        bad = malformed.tolist()
        kind_list = kinds.tolist() if kinds is not None else [0] * len(idx)
        for i, b, a, x, m, kind in zip(
            idx.tolist(), bid.tolist(), ask.tolist(), extra.tolist(), bad, kind_list, strict=True
        ):
            name = self.names[i]
            if m:
                out.append((self.keys[i], _garbage(name, kind, seq[i] + 1, now_ms)))
                continue
            seq[i] += 1 + x
            doc: dict[str, Any] = {"instrument": name, "bid": b, "ask": a, "seq": seq[i], "ts": now_ms}
            shown = depth[i]
            if shown == shown:  # a thin book: its displayed sizes
                doc["bid_size"] = doc["ask_size"] = shown
            out.append((self.keys[i], orjson.dumps(doc)))
        return out

    def book(
        self,
        n_accounts: int,
        *,
        now_ms: int,
        seed: int | None = None,
        capital_range: tuple[float, float] = (10_000.0, 1_000_000.0),
        models: Sequence[ModelSpec] = MODELS,
    ) -> Opening:
        """Open ``n_accounts`` accounts (``ACC-000001``...) on the models in turn, on target at the current
        mids: holdings rounded down to the lot, the rest in cash; position seqs 1, 2, ... per account."""
        rng = np.random.default_rng([self.seed if seed is None else seed, 0xB00C])
        lo, hi = capital_range
        picked: dict[str, Model] = {}
        targets: list[Record] = []
        positions: list[Record] = []
        for a in range(n_accounts):
            account = f"ACC-{a + 1:06d}"
            model = self._pick(models[a % len(models)], rng, now_ms)
            capital = round(math.exp(rng.uniform(math.log(lo), math.log(hi))), 2)
            picked[account] = model
            targets.append((account.encode(), orjson.dumps(targets_doc(account, model, 1, now_ms))))
            positions += self._opening_positions(account, model, capital, now_ms)
        return Opening(picked, targets, positions)

    def _pick(self, spec: ModelSpec, rng: np.random.Generator, now_ms: int) -> Model:
        """The account's instruments for each part of ``spec``, chosen at random within the tier; its
        sleeves open at ``now_ms``."""
        weights: dict[str, float] = {}
        bands: dict[str, Mapping[str, float]] = {}
        groups: dict[str, dict[str, Any]] = {}
        for part in spec.parts:
            pool = self.of_tier(part.tier)
            if not pool:
                raise ValueError(f"model {spec.name} needs a {part.tier} instrument; the market has none")
            k = min(part.count, len(pool))
            chosen = sorted(rng.choice(len(pool), size=k, replace=False).tolist())
            for c in chosen:
                weights[pool[c]] = _split(part.weight, k)
                if part.tier in spec.tier_bands:
                    bands[pool[c]] = dict(spec.tier_bands[part.tier])
            if part.group is not None:
                group: dict[str, Any] = {"members": [pool[c] for c in chosen]}
                if part.group_band is not None:
                    group["band"] = dict(part.group_band)
                if part.kill is not None:
                    group["opened_at"] = now_ms
                    group["kill"] = dict(part.kill)
                groups[part.group] = group
        return Model(spec.name, weights, dict(spec.band), spec.mode, spec.min_trade, bands, groups)

    def _opening_positions(self, account: str, model: Model, capital: float, now_ms: int) -> list[Record]:
        """Holdings on target at the current mids plus the rest as CASH, seqs 1..k+1."""
        key = account.encode()
        out: list[Record] = []
        invested = 0.0
        for seq, (name, w) in enumerate(model.weights.items(), start=1):
            i = self.index[name]
            mid = float(self.mid[i])
            qty = _floor_to(capital * w / mid, self.tiers[i].lot)
            invested += float(qty) * mid
            doc = {"account": account, "instrument": name, "qty": qty, "seq": seq, "ts": now_ms}
            out.append((key, orjson.dumps(doc)))
        cash = _floor_to(capital - invested, "0.01")
        doc = {"account": account, "instrument": CASH, "qty": cash, "seq": len(out) + 1, "ts": now_ms}
        out.append((key, orjson.dumps(doc)))
        return out


def targets_doc(account: str, model: Model, version: int, now_ms: int) -> dict[str, Any]:
    """The targets record of ``account`` on ``model``."""
    doc: dict[str, Any] = {
        "account": account,
        "version": version,
        "weights": dict(model.weights),
        "band": dict(model.band),
        "mode": model.mode,
        "min_trade": model.min_trade,
        "ts": now_ms,
    }
    if model.bands:
        doc["bands"] = {k: dict(v) for k, v in model.bands.items()}
    if model.groups:
        doc["groups"] = {name: dict(g) for name, g in model.groups.items()}
    return doc


def _garbage(name: str, kind: int, seq: int, now_ms: int) -> bytes:
    """A malformed quote: truncated JSON, a missing bid, or a bid of the wrong type."""
    if kind == 0:
        return orjson.dumps({"instrument": name, "bid": 1.0, "ask": 1.0, "seq": seq, "ts": now_ms})[:-9]
    if kind == 1:
        return orjson.dumps({"instrument": name, "ask": 1.0, "seq": seq, "ts": now_ms})
    return orjson.dumps({"instrument": name, "bid": "n/a", "ask": 1.0, "seq": seq, "ts": now_ms})
