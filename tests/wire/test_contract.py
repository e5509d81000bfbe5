"""The schemas in schemas/ are the wire contract: valid draft 2020-12, examples valid, rules enforced."""

from __future__ import annotations

import jsonschema
import orjson
import pytest
from referencing import Registry, Resource

from streamproc.wire.codec import Rejected, decimal_str, decode, payload_fields
from streamproc.wire.contract import TOPICS, Contract, SchemaViolation
from streamproc.wire.ids import rebalance_event_id
from tests.conftest import ROOT

CONTRACT = Contract(ROOT / "schemas")


def _registry() -> Registry:
    resources = [(s["$id"], Resource.from_contents(s)) for s in CONTRACT.schemas.values()]
    return Registry().with_resources(resources)


@pytest.mark.parametrize("topic", TOPICS)
def test_schema_is_valid_2020_12_and_its_examples_validate_in_both_implementations(topic: str) -> None:
    schema = CONTRACT.schemas[topic]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    reference = jsonschema.Draft202012Validator(schema, registry=_registry())
    examples = CONTRACT.examples(topic)
    assert examples, f"schemas/{topic}.json needs an example"
    for example in examples:
        reference.validate(example)
        CONTRACT.validate(topic, example)


BAD = [
    ("quotes", {"instrument": "X", "bid": "1.2.3", "ask": 1, "seq": 1, "ts": 1}),
    ("quotes", {"instrument": "X", "bid": "1e3", "ask": 1, "seq": 1, "ts": 1}),
    ("quotes", {"instrument": "X", "bid": 1, "ask": 1, "seq": 1.5, "ts": 1}),
    ("quotes", {"instrument": "", "bid": 1, "ask": 1, "seq": 1, "ts": 1}),
    ("positions", {"account": "A", "instrument": "X", "qty": -1, "seq": 1, "ts": 1}),
    ("positions", {"account": "A", "instrument": "X", "qty": "-1", "seq": 1, "ts": 1}),
    ("positions", {"account": "A", "instrument": "X", "qty": 1, "seq": 1}),
    ("targets", {"account": "A", "version": 1, "weights": {"X": -0.1}, "ts": 1}),
    ("targets", {"account": "A", "version": 1, "weights": {"X": 0.5}, "mode": "sideways", "ts": 1}),
    ("targets", {"account": "A", "version": 1, "weights": {"X": 0.5}, "band": {"abs": 3}, "ts": 1}),
    ("targets", {"account": "A", "version": 1, "weights": {}, "liquidate": "yes", "ts": 1}),
    ("targets", {"account": "A", "version": 1, "weights": {}, "withdrawal": {"amount": 5}, "ts": 1}),
    (
        "targets",
        {"account": "A", "version": 1, "weights": {}, "withdrawal": {"id": "W", "amount": -5}, "ts": 1},
    ),
    ("targets", {"account": "A", "version": 1, "weights": {}, "cash_buffer": 1.5, "ts": 1}),
    ("targets", {"account": "A", "version": 1, "weights": {}, "groups": {"g": {"members": []}}, "ts": 1}),
    ("instruments", {"instrument": "X", "lot": 0}),
    ("orders", {**CONTRACT.examples("orders")[0], "legs": []}),
    ("deadletter", {**CONTRACT.examples("deadletter")[0], "error": ""}),
]


@pytest.mark.parametrize(("topic", "doc"), BAD)
def test_both_implementations_reject_the_same_bad_documents(topic: str, doc: dict) -> None:
    with pytest.raises(SchemaViolation):
        CONTRACT.validate(topic, doc)
    reference = jsonschema.Draft202012Validator(CONTRACT.schemas[topic], registry=_registry())
    assert not reference.is_valid(doc)


def test_violation_names_the_field_and_what_is_expected() -> None:
    with pytest.raises(SchemaViolation, match=r"^qty: .*>= 0.* \(got -1\)"):
        CONTRACT.validate("positions", {"account": "A", "instrument": "X", "qty": -1, "seq": 1, "ts": 1})


@pytest.mark.parametrize(
    ("topic", "doc", "expected"),
    [
        (
            "quotes",
            {"instrument": "EQ", "bid": "x", "ask": 1, "seq": 1, "ts": 1},
            'bid: must be a JSON number or a decimal string (got "x")',
        ),
        (
            "positions",
            {"account": "A", "instrument": "EQ", "qty": "abc", "seq": 1, "ts": 1},
            'qty: must be a JSON number >= 0 or a decimal string (got "abc")',
        ),
        (
            "positions",
            {"account": "A", "seq": 1, "ts": 1},
            "value: must be an object with instrument, qty or an object with changes",
        ),
    ],
)
def test_operators_read_what_is_expected_not_the_schemas_design_notes(
    topic: str, doc: dict, expected: str
) -> None:
    with pytest.raises(SchemaViolation) as caught:
        CONTRACT.validate(topic, doc)
    assert str(caught.value).startswith(expected)
    assert len(str(caught.value)) < 200  # no description paragraphs


def _decode(topic: str, key: bytes | None, doc: object) -> dict | Rejected:
    return decode(CONTRACT, topic, key, orjson.dumps(doc))


def test_decode_classifies_what_is_wrong() -> None:
    quote = {"instrument": "X", "bid": 2, "ask": 1, "seq": 1, "ts": 1}
    assert decode(CONTRACT, "quotes", b"X", b"\xff").reason == "undecodable"
    assert decode(CONTRACT, "quotes", b"X", b"").reason == "undecodable"
    assert decode(CONTRACT, "quotes", b"X", b"{").reason == "invalid_json"
    assert _decode("quotes", b"X", [1]).reason == "schema"
    crossed = _decode("quotes", b"X", quote)
    assert crossed.reason == "semantic" and "crossed" in crossed.error
    assert crossed.doc == quote  # the quote checks still see it (seq, quote_crossed)
    zero = _decode("quotes", b"X", {**quote, "bid": 0})
    assert zero.reason == "semantic" and "non-positive" in zero.error and zero.doc is not None
    wrong_key = _decode("quotes", b"Y", {**quote, "bid": 1})
    assert wrong_key.reason == "semantic" and wrong_key.doc is None  # never applied, not even checked
    heavy = _decode("targets", b"A", {"account": "A", "version": 1, "weights": {"X": 0.6, "Y": 0.5}, "ts": 1})
    assert heavy.reason == "semantic" and "sum" in heavy.error
    ok = _decode("positions", b"A", {"account": "A", "instrument": "X", "qty": "1.5", "seq": 1, "ts": 1})
    assert isinstance(ok, dict) and float(ok["qty"]) == 1.5


def test_payload_is_text_or_base64_and_decimals_are_plain() -> None:
    assert payload_fields(b"abc") == {"payload": "abc", "encoding": "utf-8"}
    assert payload_fields(b"\xff") == {"payload": "/w==", "encoding": "base64"}
    assert decimal_str(58.654799999999994, 0.0001) == "58.6548"
    assert decimal_str(135.0, 1.0) == "135"
    assert decimal_str(0.25 * 3, 0.25) == "0.75"
    assert decimal_str(1e-7) == "0.0000001"
    assert decimal_str(6499.615000000001) == "6499.615"


def test_event_ids_are_deterministic_uuid5s_of_the_inputs() -> None:
    a = rebalance_event_id("ACC", 7, 3, 0)
    assert a == rebalance_event_id("ACC", 7, 3, 0)
    assert (
        len(
            {
                a,
                rebalance_event_id("ACC", 8, 3, 0),
                rebalance_event_id("ACC", 7, 4, 0),
                rebalance_event_id("ACC", 7, 3, 1),
            }
        )
        == 4
    )
    CONTRACT.validate("orders", {**CONTRACT.examples("orders")[0], "event_id": a})


def test_positions_carry_one_instrument_or_several_changes_not_both() -> None:
    base = {"account": "A", "seq": 1, "ts": 1}
    one = {**base, "instrument": "EQ", "qty": "1"}
    many = {**base, "changes": [{"instrument": "EQ", "qty": "1"}, {"instrument": "CASH", "qty": 2}]}
    assert decode(CONTRACT, "positions", b"A", orjson.dumps(one)) == one
    assert decode(CONTRACT, "positions", b"A", orjson.dumps(many)) == many
    for bad in ({**many, "instrument": "EQ"}, {**base, "changes": []}, base):
        assert decode(CONTRACT, "positions", b"A", orjson.dumps(bad)).reason == "schema", bad
    twice = {**base, "changes": [{"instrument": "EQ", "qty": 1}, {"instrument": "EQ", "qty": 2}]}
    rejected = decode(CONTRACT, "positions", b"A", orjson.dumps(twice))
    assert rejected.reason == "semantic" and "EQ more than once" in rejected.error
