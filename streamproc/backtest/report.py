"""Per-policy statistics of a backtest run, as a terminal table, a Markdown file and a PNG chart."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamproc.backtest.engine import Run

_DAYS_PER_YEAR = 252


@dataclass(frozen=True)
class Stats:
    """What the report says about one policy."""

    policy: str
    final_value: float
    cagr: float
    volatility: float
    max_drawdown: float
    tracking_error: float  # annualised std of (policy return - continuously rebalanced target mix return)
    events: int  # days with at least one trade
    trades: int
    turnover: float  # traded notional per year / average value
    costs: float  # fees + spread crossed
    vs_hold: float  # final value relative to buy-and-hold (0.05 = 5 % more)


def statistics(run: Run) -> list[Stats]:
    """The statistics of every policy (the first policy named buy-and-hold is the reference)."""
    values = run.values
    years = run.history.years
    mid = run.history.mid
    cols = [run.history.instruments.index(i) for i in run.targets]
    w = np.array(list(run.targets.values()))
    mix = (mid[1:, cols] / mid[:-1, cols] - 1.0) @ w  # the target mix, rebalanced every day for free
    hold = next((k for k, p in enumerate(run.policies) if p.hold), None)
    out = []
    for k, policy in enumerate(run.policies):
        v = values[:, k]
        r = v[1:] / v[:-1] - 1.0
        trades = [t for t in run.trades if t.policy == k and t.day > 0]
        notional = sum(t.notional for t in trades)
        out.append(
            Stats(
                policy=policy.name,
                final_value=float(v[-1]),
                cagr=float((v[-1] / v[0]) ** (1 / years) - 1),
                volatility=float(r.std(ddof=1) * math.sqrt(_DAYS_PER_YEAR)),
                max_drawdown=float((1 - v / np.maximum.accumulate(v)).max()),
                tracking_error=float((r - mix).std(ddof=1) * math.sqrt(_DAYS_PER_YEAR)),
                events=len({t.day for t in trades}),
                trades=len(trades),
                turnover=float(notional / years / v.mean()),
                costs=float(sum(t.fee + t.spread_cost for t in trades)),
                vs_hold=float(v[-1] / values[-1, hold] - 1) if hold is not None else math.nan,
            )
        )
    return out


_COLUMNS = (
    ("policy", "{}"),
    ("final value", "{:,.0f}"),
    ("CAGR", "{:.2%}"),
    ("volatility", "{:.2%}"),
    ("max drawdown", "{:.2%}"),
    ("tracking error", "{:.2%}"),
    ("events", "{:d}"),
    ("trades", "{:d}"),
    ("turnover / yr", "{:.1%}"),
    ("costs", "{:,.0f}"),
    ("vs buy-and-hold", "{:+.2%}"),
)


def rows(stats: list[Stats]) -> list[list[str]]:
    """The table cells, formatted."""
    out = []
    for s in stats:
        values = (
            s.policy,
            s.final_value,
            s.cagr,
            s.volatility,
            s.max_drawdown,
            s.tracking_error,
            s.events,
            s.trades,
            s.turnover,
            s.costs,
            s.vs_hold,
        )
        out.append([fmt.format(v) for (_, fmt), v in zip(_COLUMNS, values, strict=True)])
    return out


def table(stats: list[Stats]) -> str:
    """A fixed-width table for the terminal."""
    cells = [[c for c, _ in _COLUMNS], *rows(stats)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(_COLUMNS))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(stats: list[Stats], title: str) -> str:
    """A Markdown table with a heading."""
    head = [c for c, _ in _COLUMNS]
    lines = [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(stats)]
    return "\n".join(lines) + "\n"


def groups_markdown(run: Run, title: str) -> str:
    """Per policy: the legs traded in each group of the portfolio (and outside them), and the sleeves
    stopped (date, trigger, the sleeve's value against its entry then). Empty without groups."""
    groups = list(run.portfolio.groups)
    if not groups:
        return ""
    outside = any(i not in run.portfolio.group_of() for i in run.portfolio.weights)
    head = ["policy", *(f"legs {g}" for g in groups), *(["legs outside groups"] if outside else [])]
    head.append("sleeve stops")
    lines = [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    dates = run.history.dates
    for k, policy in enumerate(run.policies):
        legs = [t for t in run.trades if t.policy == k and t.day > 0]
        cells = [policy.name, *(str(sum(t.group == g for t in legs)) for g in groups)]
        if outside:
            cells.append(str(sum(t.group is None for t in legs)))
        stops = [
            f"{s.sleeve} {dates[s.day].isoformat()} {s.trigger} at {s.mark - 1:+.1%} of entry"
            for s in run.stops
            if s.policy == k
        ]
        cells.append(", ".join(stops) or "none")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def chart(run: Run, path: Path, *, focus: str = "abs ±5 pts", shown: tuple[str, ...] = ()) -> Path:
    """Equity curves of the policies (all, or ``shown``) above the drift of the first group's (else the
    first target instrument's) weight under ``focus`` (with its band) and under buy-and-hold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [p.name for p in run.policies]
    picked = [k for k, n in enumerate(names) if not shown or n in shown]
    dates = run.history.dates
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 8), sharex=True, height_ratios=(3, 2))
    for k in picked:
        top.plot(dates, run.values[:, k], lw=1.0, label=names[k])
    top.set_ylabel("portfolio value")
    top.legend(fontsize=7, ncol=3)
    top.grid(alpha=0.3)
    # the first group's weight (an asset class) or else the first instrument's
    first = next(iter(run.portfolio.groups.items()), None)
    if first is not None:
        inst, members = first[0], list(first[1]["members"])
    else:
        inst = next(iter(run.targets))
        members = [inst]
    cols = [run.history.instruments.index(m) for m in members]
    target = sum(run.targets[m] for m in members)
    if focus in names:
        k = names.index(focus)
        policy = run.policies[k]
        bottom.plot(dates, run.weights[:, k, cols].sum(axis=1), lw=1.0, label=f"{inst} weight, {focus}")
        limit = min(policy.band.abs_or_inf, policy.band.rel_or_inf * target)
        for edge in (target - limit, target + limit):
            bottom.axhline(edge, color="grey", ls="--", lw=0.8)
    hold = next((k for k, p in enumerate(run.policies) if p.hold), None)
    if hold is not None:
        bottom.plot(
            dates,
            run.weights[:, hold, cols].sum(axis=1),
            lw=1.0,
            alpha=0.7,
            label=f"{inst} weight, buy-and-hold",
        )
    bottom.axhline(target, color="black", lw=0.8)
    bottom.set_ylabel(f"{inst} weight")
    bottom.legend(fontsize=7)
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
