"""Partition handover in-process: a revoked partition is kept in memory and reused when assigned back
only while the store still names this worker its owner; otherwise it is loaded again."""

from __future__ import annotations

import orjson

from streamproc.app.deadletters import Record
from streamproc.testkit import worker
from tests.app.kit import CONTRACT, market, open_account, own, settings


async def test_a_suspended_partition_is_reused_only_with_its_own_owner_token() -> None:
    s = settings()
    w = worker(s, CONTRACT, partitions=2, token="mine")
    await own(w, 0)
    market(w)
    await open_account(w, "A")
    loads = w.store.calls["load_partitions"]
    assert w.parts.ownership.owns_partition(0) and w.store.owner == {0: "mine"}
    await w.parts.ownership.on_revoked({0})
    assert not w.parts.ownership.owns_partition(0) and w.parts.ownership.suspended == {0}
    await own(w, 0)  # nobody claimed it meanwhile: reused from memory
    assert w.parts.ownership.owns_partition(0) and w.store.calls["load_partitions"] == loads
    # revoked again, and another worker owned it meanwhile and changed A's holdings
    await w.parts.ownership.on_revoked({0})
    other = worker(s, CONTRACT, partitions=2, store=w.store, clock=w.clock, token="other")
    await own(other, 0)
    assert w.store.owner == {0: "other"}
    fill = {"account": "A", "instrument": "EQ", "qty": 500.0, "seq": 4, "ts": 1}
    await other.parts.intake.on_records([_position(s.topics.positions, fill)])
    await own(w, 0)
    assert w.store.calls["load_partitions"] == loads + 2, "loaded again, not reused"
    assert w.store.owner == {0: "mine"} and w.parts.ownership.owns_partition(0)
    assert w.parts.accounts.book.holdings("A")["EQ"] == 500.0, "the other owner's change is loaded"


def _position(topic: str, doc: dict[str, object]) -> Record:
    return Record(topic, 0, 10, b"A", orjson.dumps(doc))
