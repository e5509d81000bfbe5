"""The drift document stays fresh: rewritten when a weight moves more than STREAMPROC_DRIFT_MIN_MOVE or
after STREAMPROC_DRIFT_REFRESH_S, not on every evaluation; ``status_since`` is kept apart from
``evaluated_at`` and survives a restart."""

from __future__ import annotations

import pytest

from streamproc.testkit import InMemoryWorker, worker
from tests.app.kit import CONTRACT, market, open_account, own, quote, settings


def eq_price(weight: float) -> float:
    """EQ price at which 600 EQ next to 800 BOND at 50 weighs ``weight``."""
    return weight * 40_000 / (600 * (1 - weight))


async def drift(w: InMemoryWorker) -> dict[str, object]:
    stored = await w.store.load_account("A")
    assert stored is not None and stored.drift is not None
    return dict(stored.drift)


async def evaluate_at(
    w: InMemoryWorker, eq_weight: float, seq: int, advance: float = 1.0
) -> dict[str, object]:
    w.clock.advance(advance)
    quote(w, "EQ", eq_price(eq_weight), seq)
    quote(w, "BOND", 50.0, seq)  # (not stale after a long advance)
    await w.parts.evaluator.run_once()
    return await drift(w)


async def test_moved_weights_are_rewritten_small_moves_wait_for_the_refresh() -> None:
    w = worker(settings(STREAMPROC_DRIFT_REFRESH_S="60"), CONTRACT)
    await own(w, 0)
    market(w)
    await open_account(w, "A")
    first = await evaluate_at(w, 0.60, 2)
    assert first["status"] == "ok" and first["status_since"] == first["evaluated_at"]
    assert first["weights"]["EQ"] == pytest.approx(0.60, abs=1e-4)  # type: ignore[index]

    small = await evaluate_at(w, 0.601, 3)  # 0.1 point: under the quarter point, not rewritten
    assert small == first
    moved = await evaluate_at(w, 0.623, 4)  # still in band (+-3), but 2.3 points off what was written
    assert moved["status"] == "ok" and moved["evaluated_at"] > first["evaluated_at"]
    assert moved["weights"]["EQ"] == pytest.approx(0.623, abs=1e-4)  # type: ignore[index]
    assert moved["status_since"] == first["status_since"], "the status held all along"

    stale = await evaluate_at(w, 0.624, 5, advance=61)  # a tenth of a point, a minute later
    assert stale["evaluated_at"] > moved["evaluated_at"]
    assert stale["weights"]["EQ"] == pytest.approx(0.624, abs=1e-4)  # type: ignore[index]

    # a breach changes the status: since moves with it
    breached = await evaluate_at(w, 0.665, 6)
    assert breached["status"] == "ordered" and breached["status_since"] == breached["evaluated_at"]


async def test_status_since_survives_a_restart() -> None:
    s = settings()
    w = worker(s, CONTRACT)
    await own(w, 0)
    market(w)
    await open_account(w, "A")
    first = await evaluate_at(w, 0.60, 2)
    later = worker(s, CONTRACT, store=w.store, publisher=w.publisher, clock=w.clock)
    market(later, eq=eq_price(0.62), seq=3)
    await own(later, 0)
    for _ in range(3):
        later.clock.advance(1)
        await later.parts.evaluator.run_once()
    again = await drift(later)
    assert again["evaluated_at"] > first["evaluated_at"], "a loaded account is written at its next evaluation"
    assert again["status"] == "ok" and again["status_since"] == first["status_since"]
