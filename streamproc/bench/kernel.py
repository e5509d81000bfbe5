"""`streamproc bench kernel`: the vectorized drift kernel against a per-account Python loop, with and
without groups (asset classes), and against the machine's floor, side by side in one run."""

from __future__ import annotations

import gc
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from streamproc.core import Book
from streamproc.core.reference import evaluate_account
from streamproc.core.types import I64

STEPS = np.array([s for s in range(1, 997) if s % 2 and s % 5])  # coprime with 10^k * 2^j instrument counts


def _rss_mib() -> float:
    """Peak resident set size of this process so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _best(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(best, median) wall seconds over ``repeat`` runs."""
    return _interleaved({"fn": fn}, repeat)["fn"]


def add_groups(book: Book, holdings: int) -> int:
    """Split every account's holdings into two classes (the first half "equity", the rest "bonds"),
    each banded at +-3 points; returns the groups per account."""
    rows = np.arange(book.n_accounts, dtype=np.int64)
    slot_group = np.full((rows.size, holdings), 1, dtype=np.int8)
    slot_group[:, : holdings // 2] = 0
    book.load_groups(
        rows, slot_group, ("equity", "bonds"), np.full((rows.size, 2), 0.03), np.full((rows.size, 2), np.nan)
    )
    return 2


def _interleaved(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, tuple[float, float]]:
    """(best, median) wall seconds of each of ``fns``, run in turn ``repeat`` times: a slow spell of
    a shared machine then hits all of them, and their ratios hold."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: (min(t), float(np.median(t))) for name, t in times.items()}


def floor_pass(book: Book) -> Callable[[], object]:
    """The least any evaluation does, as one streaming numpy pass over the same book arrays: gather
    each slot's mid, times its quantity, summed per account (the account values)."""
    n = book.n_accounts
    inst, qty, mid = book._inst[:n], book._qty[:n], book._mid  # the arrays measured, read directly
    ones = np.ones(inst.shape[1])
    buf = np.empty(inst.shape)

    def once() -> object:
        np.take(mid, inst, out=buf, mode="wrap")
        np.multiply(buf, qty, out=buf)
        return buf @ ones

    return once


def build_book(accounts: int, holdings: int, instruments: int, seed: int) -> Book:
    """A book of ``accounts`` x ``holdings`` over ``instruments``, near target with random drift."""
    rng = np.random.default_rng(seed)
    book = Book(slots=holdings)
    inst_idx = book.instrument_indices(f"I{i:05d}" for i in range(instruments))
    mids = rng.uniform(5.0, 500.0, instruments)
    spread = mids * rng.uniform(0.0001, 0.002, instruments)
    book.apply_prices(inst_idx, mids - spread / 2, mids + spread / 2)
    base = rng.integers(0, instruments, accounts)
    step = rng.choice(STEPS[instruments > STEPS], accounts)
    slots = ((base[:, None] + step[:, None] * np.arange(holdings)) % instruments).astype(np.int32)
    raw = rng.uniform(0.5, 1.5, (accounts, holdings))
    targets = raw / raw.sum(axis=1, keepdims=True) * 0.98
    value = rng.uniform(1_000.0, 250_000.0, accounts)
    drift = rng.lognormal(0.0, 0.12, (accounts, holdings))
    qty = targets * drift * value[:, None] / mids[slots]
    cash = value * 0.02
    chunk = 250_000  # bound the temporaries of the id strings
    for lo in range(0, accounts, chunk):
        hi = min(lo + chunk, accounts)
        book.load_rows(
            (f"A{r:07d}" for r in range(lo, hi)), slots[lo:hi], qty[lo:hi], targets[lo:hi], cash[lo:hi]
        )
    return book


class LoopInput(NamedTuple):
    """The arguments of ``evaluate_account`` for one account."""

    holdings: dict[str, float]
    cash: float
    targets: dict[str, float]
    limits: dict[str, float]
    mids: dict[str, float | None]


def _loop_inputs(book: Book, rows: I64) -> list[LoopInput]:
    """Per-account dicts as a plain implementation would hold them (built through the public API)."""
    mids: dict[str, float | None] = {}
    for i in book.instruments.ids():
        bid, ask, _ = book.price(i)
        mids[i] = (bid + ask) * 0.5
    out = []
    for r in rows.tolist():
        acct = book.accounts.id_of(r)
        holdings, targets = book.holdings(acct), book.targets(acct)
        limits = {i: book.limit(acct, i) for i in holdings.keys() | targets.keys()}
        out.append(LoopInput(holdings, book.cash(acct), targets, limits, mids))
    return out


def run(
    accounts: int = 1_000_000,
    holdings: int = 10,
    instruments: int = 5_000,
    changed: int = 50,
    loop_sample: int = 20_000,
    repeat: int = 7,
    seed: int = 7,
    out: Path | None = Path("bench-results/kernel.json"),
) -> dict[str, Any]:
    """Run the kernel benchmark, print a table and return (and write) the figures."""

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    gc.collect()
    rss0 = _current_rss_mib()
    say(f"building {accounts:,} accounts x {holdings} holdings over {instruments:,} instruments ...")
    t0 = time.perf_counter()
    book = build_book(accounts, holdings, instruments, seed)
    build_s = time.perf_counter() - t0
    gc.collect()
    rss_built = _current_rss_mib()

    say("the same accounts again, in two groups each (asset classes at +-3 points) ...")
    grouped = build_book(accounts, holdings, instruments, seed)
    groups = add_groups(grouped, holdings)

    say("the floor, full evaluations without and with groups, in turn ...")
    timed = _interleaved(
        {"floor": floor_pass(book), "plain": lambda: book.evaluate(), "grouped": lambda: grouped.evaluate()},
        repeat,
    )
    (floor_best, floor_med), (full_best, full_med) = timed["floor"], timed["plain"]
    grouped_best, grouped_med = timed["grouped"]
    gev = grouped.evaluate()
    grouped_breaching = int(gev.breaching.sum())
    ev = book.evaluate()
    breaching = int(ev.breaching.sum())

    rng = np.random.default_rng(seed + 1)
    t0 = time.perf_counter()
    book.accounts_affected_by(np.array([0]))  # builds the inverted index once
    index_s = time.perf_counter() - t0

    grouped.accounts_affected_by(np.array([0]))

    def price_batch(book: Book = book) -> int:
        idx = rng.choice(instruments, changed, replace=False)
        bid, ask, _ = zip(*(book.price(book.instruments.id_of(int(i))) for i in idx), strict=True)
        moved = rng.normal(1.0, 0.01, changed)
        book.apply_prices(idx, np.array(bid) * moved, np.array(ask) * moved)
        rows = book.accounts_affected_by(idx)
        book.evaluate(rows)
        return int(rows.size)

    affected_rows = price_batch()
    say(f"evaluation of the accounts affected by {changed} changed prices ...")
    batches = _interleaved({"plain": price_batch, "grouped": lambda: price_batch(grouped)}, repeat)
    (batch_best, batch_med), (grouped_batch_best, _) = batches["plain"], batches["grouped"]

    say("legs for breaching accounts ...")
    plans = _interleaved({"plain": lambda: book.plan(ev), "grouped": lambda: grouped.plan(gev)}, 3)
    plan_best, grouped_plan_best = plans["plain"][0], plans["grouped"][0]

    say(f"per-account Python loop on a sample of {loop_sample:,} accounts ...")
    sample = np.sort(rng.choice(accounts, min(loop_sample, accounts), replace=False))
    inputs = _loop_inputs(book, sample)
    t0 = time.perf_counter()
    for args in inputs:
        evaluate_account(*args)
    loop_s = time.perf_counter() - t0
    loop_full_s = loop_s / len(inputs) * accounts
    vec_sample_best, _ = _best(lambda: book.evaluate(sample), repeat)
    sampled = len(inputs)

    result: dict[str, Any] = {
        "accounts": accounts,
        "holdings": holdings,
        "instruments": instruments,
        "build_s": round(build_s, 3),
        "build_memory_mib": round(rss_built - rss0, 1),  # the book without groups
        "book_arrays_mib": round(book.nbytes() / 2**20, 1),
        "floor_ms": {"best": round(floor_best * 1e3, 2), "median": round(floor_med * 1e3, 2)},
        "full_eval_ms": {"best": round(full_best * 1e3, 2), "median": round(full_med * 1e3, 2)},
        "breaching_accounts": breaching,
        "groups": {
            "per_account": groups,
            "full_eval_ms": {"best": round(grouped_best * 1e3, 2), "median": round(grouped_med * 1e3, 2)},
            "breaching_accounts": grouped_breaching,
            "price_batch_ms_best": round(grouped_batch_best * 1e3, 2),
            "plan_legs_ms": round(grouped_plan_best * 1e3, 2),
        },
        "ratios": {
            "full_eval_over_floor": round(full_best / floor_best, 2),
            "grouped_eval_over_floor": round(grouped_best / floor_best, 2),
            "grouped_over_plain": round(grouped_best / full_best, 2),
        },
        "index_build_s": round(index_s, 3),
        "price_batch": {
            "changed_prices": changed,
            "affected_accounts": affected_rows,
            "ms_best": round(batch_best * 1e3, 2),
            "ms_median": round(batch_med * 1e3, 2),
        },
        "plan_legs_ms": round(plan_best * 1e3, 2),
        "loop": {
            "sample_accounts": sampled,
            "sample_s": round(loop_s, 3),
            "scaled_full_s": round(loop_full_s, 2),
            "vectorized_same_sample_ms": round(vec_sample_best * 1e3, 2),
        },
        "speedup_full_vs_loop": round(loop_full_s / full_best, 1),
        "speedup_same_sample": round(loop_s / vec_sample_best, 1),
        "peak_rss_mib": round(_rss_mib(), 1),
    }
    rows = [
        (
            "build (load_rows)",
            f"{build_s:.2f} s",
            f"+{result['build_memory_mib']} MiB RSS (target <= 1024 MiB)",
        ),
        ("floor: one streaming pass", f"{floor_best * 1e3:.1f} ms", "gather mid x qty, summed per account"),
        (
            "full evaluation",
            f"{full_best * 1e3:.1f} ms",
            f"median {full_med * 1e3:.1f} ms, {breaching:,} breaching; "
            f"{full_best / floor_best:.2f}x the floor",
        ),
        (
            f"  with {groups} groups each",
            f"{grouped_best * 1e3:.1f} ms",
            f"median {grouped_med * 1e3:.1f} ms, {grouped_breaching:,} breaching; "
            f"{grouped_best / floor_best:.2f}x the floor, "
            f"{grouped_best / full_best:.2f}x without groups",
        ),
        ("inverted index build", f"{index_s:.2f} s", "once, lazily"),
        (
            f"{changed} changed prices",
            f"{batch_best * 1e3:.1f} ms",
            f"{affected_rows:,} affected accounts evaluated",
        ),
        (
            "  with groups",
            f"{grouped_batch_best * 1e3:.1f} ms",
            f"{grouped_batch_best / batch_best:.2f}x without groups",
        ),
        ("legs for breaching", f"{plan_best * 1e3:.1f} ms", f"{breaching:,} accounts"),
        ("  with groups", f"{grouped_plan_best * 1e3:.1f} ms", f"{grouped_breaching:,} accounts"),
        ("per-account loop (scaled)", f"{loop_full_s * 1e3:.0f} ms", f"from {sampled:,} accounts"),
        ("speedup full vs loop", f"{result['speedup_full_vs_loop']}x", "target >= 100x"),
        ("speedup same sample", f"{result['speedup_same_sample']}x", f"{sampled:,} accounts both ways"),
        ("peak RSS, whole run", f"{result['peak_rss_mib']} MiB", "incl. loop sample dicts and legs"),
    ]
    print(f"{'kernel benchmark':<28}{'figure':>14}  note")
    for name, fig, note in rows:
        print(f"{name:<28}{fig:>14}  {note}")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"written {out}")
    return result
