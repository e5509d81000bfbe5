"""Account intake in-process: an atomic positions record (several instruments, cash included) is
applied and stored whole; a bad one is dead-lettered with its reason and changes nothing."""

from __future__ import annotations

import orjson

from streamproc.app.deadletters import Record
from streamproc.testkit import worker
from tests.app.kit import CONTRACT, open_account, own, settings


async def test_an_atomic_fill_is_applied_and_stored_whole_and_a_bad_one_is_dead_lettered() -> None:
    w = worker(settings(), CONTRACT)
    await own(w, 0)
    await open_account(w, "A")  # seqs 1-3 and targets
    topic = w.parts.settings.topics.positions
    fill = {
        "account": "A",
        "changes": [{"instrument": "EQ", "qty": "550"}, {"instrument": "CASH", "qty": "5000"}],
    }
    twice = {"account": "A", "changes": [{"instrument": "EQ", "qty": 1}, {"instrument": "EQ", "qty": 2}]}
    records = [
        Record(topic, 0, 10, b"A", orjson.dumps({**fill, "seq": 4, "ts": 4})),
        Record(topic, 0, 11, b"A", orjson.dumps({**twice, "seq": 5, "ts": 5})),
    ]
    await w.parts.intake.on_records(records)
    stored = await w.store.load_account("A")
    assert stored is not None and stored.seq == 4
    assert stored.holdings == {"EQ": 550.0, "BOND": 800.0} and stored.cash == 5000.0
    (dead,) = [orjson.loads(r.value) for r in w.publisher.sent(w.parts.settings.topics.deadletter)]
    assert dead["reason"] == "semantic" and "EQ more than once" in dead["error"] and dead["offset"] == 11
    assert w.parts.counters.deadletters.get("positions", "semantic") == 1
