"""`streamproc bench kernel`: the vectorized drift kernel against a per-account Python loop, side by side."""

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
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times))


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

    say("full evaluation ...")
    full_best, full_med = _best(lambda: book.evaluate(), repeat)
    ev = book.evaluate()
    breaching = int(ev.breaching.sum())

    rng = np.random.default_rng(seed + 1)
    t0 = time.perf_counter()
    book.accounts_affected_by(np.array([0]))  # builds the inverted index once
    index_s = time.perf_counter() - t0

    def price_batch() -> int:
        idx = rng.choice(instruments, changed, replace=False)
        bid, ask, _ = zip(*(book.price(book.instruments.id_of(int(i))) for i in idx), strict=True)
        moved = rng.normal(1.0, 0.01, changed)
        book.apply_prices(idx, np.array(bid) * moved, np.array(ask) * moved)
        rows = book.accounts_affected_by(idx)
        book.evaluate(rows)
        return int(rows.size)

    affected_rows = price_batch()
    say(f"evaluation of the accounts affected by {changed} changed prices ...")
    batch_best, batch_med = _best(price_batch, repeat)

    say("legs for breaching accounts ...")
    plan_best, _ = _best(lambda: book.plan(ev), 3)

    say(f"per-account Python loop on a sample of {loop_sample:,} accounts ...")
    sample = np.sort(rng.choice(accounts, min(loop_sample, accounts), replace=False))
    inputs = _loop_inputs(book, sample)
    t0 = time.perf_counter()
    for args in inputs:
        evaluate_account(*args)
    loop_s = time.perf_counter() - t0
    loop_full_s = loop_s / len(inputs) * accounts
    vec_sample_best, _ = _best(lambda: book.evaluate(sample), repeat)

    result: dict[str, Any] = {
        "accounts": accounts,
        "holdings": holdings,
        "instruments": instruments,
        "build_s": round(build_s, 3),
        "build_memory_mib": round(rss_built - rss0, 1),
        "book_arrays_mib": round(book.nbytes() / 2**20, 1),
        "full_eval_ms": {"best": round(full_best * 1e3, 2), "median": round(full_med * 1e3, 2)},
        "breaching_accounts": breaching,
        "index_build_s": round(index_s, 3),
        "price_batch": {
            "changed_prices": changed,
            "affected_accounts": affected_rows,
            "ms_best": round(batch_best * 1e3, 2),
            "ms_median": round(batch_med * 1e3, 2),
        },
        "plan_legs_ms": round(plan_best * 1e3, 2),
        "loop": {
            "sample_accounts": len(inputs),
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
        (
            "full evaluation",
            f"{full_best * 1e3:.1f} ms",
            f"median {full_med * 1e3:.1f} ms, {breaching:,} breaching",
        ),
        ("inverted index build", f"{index_s:.2f} s", "once, lazily"),
        (
            f"{changed} changed prices",
            f"{batch_best * 1e3:.1f} ms",
            f"{affected_rows:,} affected accounts evaluated",
        ),
        ("legs for breaching", f"{plan_best * 1e3:.1f} ms", f"{breaching:,} accounts"),
        ("per-account loop (scaled)", f"{loop_full_s * 1e3:.0f} ms", f"from {len(inputs):,} accounts"),
        ("speedup full vs loop", f"{result['speedup_full_vs_loop']}x", "target >= 100x"),
        ("speedup same sample", f"{result['speedup_same_sample']}x", f"{len(inputs):,} accounts both ways"),
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
