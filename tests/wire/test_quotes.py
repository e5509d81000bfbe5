"""The batch quote decoder never accepts what the schema and the per-record decoder reject, and takes
the common, plain quote at full speed."""

from __future__ import annotations

import copy
import math

import orjson
import pytest

from streamproc.wire.codec import Rejected, decode
from streamproc.wire.contract import Contract
from streamproc.wire.quotes import QuoteDecoder
from tests.conftest import ROOT

CONTRACT = Contract(ROOT / "schemas")
GOOD = {"instrument": "EQ-1", "bid": 99.5, "ask": 100, "seq": 3, "ts": 1795000000000}

# each variant is a (key, value) record; the fast path must either decline it or agree with `decode`
VARIANTS: list[tuple[bytes | None, bytes | None]] = [
    (b"EQ-1", orjson.dumps(GOOD)),
    (b"EQ-1", orjson.dumps({**GOOD, "bid": 100, "ask": 100})),
    (b"EQ-1", orjson.dumps({**GOOD, "bid": "99.5"})),  # decimal strings are valid: the slow path
    (b"EQ-1", orjson.dumps({**GOOD, "venue": "XAMS"})),  # optional fields
    (b"EQ-1", orjson.dumps({**GOOD, "bid_size": 100, "ask_size": 52.5})),
    (b"EQ-1", orjson.dumps({**GOOD, "ask_size": 0})),
    (b"EQ-1", orjson.dumps({**GOOD, "bid_size": 7, "venue": "XAMS"})),
    (b"EQ-1", orjson.dumps({**GOOD, "bid_size": "100"})),  # a decimal string: valid, the slow path
    (b"EQ-1", orjson.dumps({**GOOD, "bid_size": -1})),
    (b"EQ-1", orjson.dumps({**GOOD, "bid_size": True})),
    (b"EQ-1", orjson.dumps({**GOOD, "venue": "X" * 65})),
    (b"EQ-1", orjson.dumps({**GOOD, "venue": 5})),
    (b"EQ-1", orjson.dumps({**GOOD, "depth": 5})),  # a field the schema allows but does not name
    (b"EQ-1", orjson.dumps({**GOOD, "bid": 101.0})),  # crossed
    (b"EQ-1", orjson.dumps({**GOOD, "bid": 0})),  # non-positive
    (b"EQ-1", orjson.dumps({**GOOD, "bid": -1.0})),
    (b"EQ-1", orjson.dumps({**GOOD, "seq": -1})),
    (b"EQ-1", orjson.dumps({**GOOD, "seq": 1.0})),
    (b"EQ-1", orjson.dumps({**GOOD, "seq": True})),
    (b"EQ-1", orjson.dumps({**GOOD, "ts": -5})),
    (b"EQ-1", orjson.dumps({**GOOD, "ts": None})),
    (b"EQ-1", orjson.dumps(GOOD).replace(b'"seq":3', b'"seq":' + str(2**70).encode())),
    (b"EQ-1", orjson.dumps({**GOOD, "bid": True})),
    (b"EQ-1", orjson.dumps({**GOOD, "bid": [1]})),
    (b"EQ-1", orjson.dumps({k: v for k, v in GOOD.items() if k != "ask"})),
    (b"EQ-1", orjson.dumps({**{k: v for k, v in GOOD.items() if k != "ask"}, "asq": 100})),
    (b"EQ-2", orjson.dumps(GOOD)),  # wrong key
    (None, orjson.dumps(GOOD)),
    (b"EQ 1", orjson.dumps({**GOOD, "instrument": "EQ 1"})),  # whitespace in the id
    (b"", orjson.dumps({**GOOD, "instrument": ""})),
    (b"EQ-1", b"[1, 2]"),
    (b"EQ-1", b"{not json"),
    (b"EQ-1", b"\xff\xfe"),
    (b"EQ-1", b""),
    (b"EQ-1", None),
]


@pytest.mark.parametrize("record", VARIANTS, ids=[str(v)[:60] for _k, v in VARIANTS])
def test_the_fast_path_accepts_only_what_decode_accepts_and_reads_it_identically(
    record: tuple[bytes | None, bytes | None],
) -> None:
    key, value = record
    cols = QuoteDecoder(CONTRACT).decode([key], [value])
    slow = decode(CONTRACT, "quotes", key, value)
    if cols is None:
        return
    assert not isinstance(slow, Rejected)
    assert (cols.instrument[0], float(cols.bid[0]), float(cols.ask[0])) == (
        slow["instrument"],
        float(slow["bid"]),
        float(slow["ask"]),
    )
    assert (int(cols.seq[0]), int(cols.ts[0])) == (slow["seq"], slow["ts"])
    for name, column in (("bid_size", cols.bid_size), ("ask_size", cols.ask_size)):
        if name in slow:
            assert column is not None and float(column[0]) == float(slow[name])
        else:
            assert column is None or math.isnan(column[0])


def test_quotes_with_sizes_take_the_fast_path_with_their_sizes() -> None:
    docs = [{**GOOD, "seq": 1, "bid_size": 10}, {**GOOD, "seq": 2}, {**GOOD, "seq": 3, "ask_size": 4.5}]
    cols = QuoteDecoder(CONTRACT).decode([b"EQ-1"] * 3, [orjson.dumps(d) for d in docs])
    assert cols is not None and cols.bid_size is not None and cols.ask_size is not None
    assert [x if x == x else None for x in cols.bid_size.tolist()] == [10.0, None, None]
    assert [x if x == x else None for x in cols.ask_size.tolist()] == [None, None, 4.5]


def test_plain_valid_quotes_take_the_fast_path() -> None:
    decoder = QuoteDecoder(CONTRACT)
    docs = [{**GOOD, "instrument": f"I{i % 7}", "seq": i} for i in range(50)]
    cols = decoder.decode([d["instrument"].encode() for d in docs], [orjson.dumps(d) for d in docs])
    assert cols is not None
    assert list(cols.instrument) == [d["instrument"] for d in docs]
    assert cols.seq.tolist() == list(range(50))


def test_one_bad_record_sends_the_whole_batch_to_the_per_record_path() -> None:
    decoder = QuoteDecoder(CONTRACT)
    keys, values = [b"EQ-1", b"EQ-1"], [orjson.dumps(GOOD), orjson.dumps({**GOOD, "bid": 101.0})]
    assert decoder.decode(keys, values) is None
    assert decoder.decode(keys[:1], values[:1]) is not None


def test_a_schema_the_fast_path_does_not_implement_switches_it_off() -> None:
    changed = copy.deepcopy(CONTRACT)
    changed.schemas["quotes"]["required"].append("venue")
    assert QuoteDecoder(CONTRACT).enabled
    assert not QuoteDecoder(changed).enabled
    changed = copy.deepcopy(CONTRACT)
    changed.schemas["common"]["$defs"]["seq"]["maximum"] = 10
    assert not QuoteDecoder(changed).enabled
    changed = copy.deepcopy(CONTRACT)
    changed.schemas["quotes"]["properties"]["venue"]["maxLength"] = 8
    assert not QuoteDecoder(changed).enabled
