"""Decoding a batch of quotes records into columns at C speed (one ``map`` per check, not one Python
call per record) when every record is a plain, valid quote, the common case. Any other batch returns
None and is decoded record by record (``codec.decode``), which gives exact per-record errors."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from streamproc.core.types import F64, I64
from streamproc.wire.contract import Contract, SchemaViolation

# The shape of schemas/quotes.json this fast path implements; a schema that differs disables it.
_FIELDS = ("instrument", "bid", "ask", "seq", "ts")
_REFS = {
    "instrument": "common.json#/$defs/id",
    "bid": "common.json#/$defs/price",
    "ask": "common.json#/$defs/price",
    "seq": "common.json#/$defs/seq",
    "ts": "common.json#/$defs/ts",
}
_OPTIONAL = ("bid_size", "ask_size", "venue")  # displayed sizes (depth-aware sizing) and the venue
_NUMBERS = frozenset((int, float))  # JSON numbers; bool is neither
_GETTERS = tuple(operator.itemgetter(f) for f in _FIELDS)
_NAN = float("nan")


@dataclass(frozen=True, slots=True)
class QuoteColumns:
    """A batch of valid quotes as columns, in arrival order."""

    instrument: Sequence[str]
    bid: F64
    ask: F64
    seq: I64
    ts: I64
    bid_size: F64 | None = None  # displayed sizes (NaN: not given); None: no quote of the batch gave any
    ask_size: F64 | None = None

    @property
    def sizes(self) -> tuple[F64, F64] | None:
        """The displayed (bid, ask) sizes, or None when no quote of the batch gave any."""
        if self.bid_size is None or self.ask_size is None:
            return None
        return self.bid_size, self.ask_size

    @classmethod
    def of(cls, docs: Sequence[Mapping[str, Any]]) -> QuoteColumns:
        """Columns of quote documents already decoded one by one (prices may be decimal strings)."""
        sized = any("bid_size" in d or "ask_size" in d for d in docs)
        return cls(
            [d["instrument"] for d in docs],
            np.array([float(d["bid"]) for d in docs]),
            np.array([float(d["ask"]) for d in docs]),
            np.array([int(d["seq"]) for d in docs], dtype=np.int64),
            np.array([int(d["ts"]) for d in docs], dtype=np.int64),
            np.array([float(d.get("bid_size", _NAN)) for d in docs]) if sized else None,
            np.array([float(d.get("ask_size", _NAN)) for d in docs]) if sized else None,
        )


class QuoteDecoder:
    """Columns of a batch of quotes records, or None when any record needs the per-record path."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self.enabled = _implements(contract.schemas["quotes"], contract.schemas["common"]["$defs"])
        self._ids: set[str] = set()  # instrument ids that passed the schema's id rule

    def decode(self, keys: list[bytes | None], values: list[bytes | None]) -> QuoteColumns | None:
        """The batch as columns when every record is a JSON object with the five required fields (and
        optionally sizes and a venue), of the right JSON types, keyed by its instrument, with
        0 < bid <= ask; else None."""
        if not self.enabled or not values:
            return None
        try:
            # a None value (tombstone) raises TypeError here: such a batch takes the per-record path
            docs: list[Any] = list(map(orjson.loads, values))  # type: ignore[arg-type]
        except (orjson.JSONDecodeError, TypeError):
            return None
        if set(map(type, docs)) != {dict}:
            return None
        extra = sum(map(len, docs)) - len(_FIELDS) * len(docs)
        sizes = None
        if extra:  # optional fields: sizes (numbers >= 0) and a venue, nothing else
            sizes = _sizes(docs, extra)
            if sizes is None:
                return None
        try:
            inst, bid, ask, seq, ts = (list(map(get, docs)) for get in _GETTERS)
        except KeyError:
            return None
        if (
            set(map(type, inst)) != {str}
            or not set(map(type, bid)) <= _NUMBERS
            or not set(map(type, ask)) <= _NUMBERS
            or set(map(type, seq)) != {int}
            or set(map(type, ts)) != {int}
            or list(map(_encode, inst)) != keys
        ):
            return None
        try:
            cols = QuoteColumns(
                inst,
                np.array(bid, dtype=np.float64),
                np.array(ask, dtype=np.float64),
                np.array(seq, dtype=np.int64),
                np.array(ts, dtype=np.int64),
                *(sizes or (None, None)),
            )
        except OverflowError:
            return None
        if (cols.seq < 0).any() or (cols.ts < 0).any() or not _valid_prices(cols.bid, cols.ask):
            return None
        if not self._ids.issuperset(inst) and not self._check_ids(docs, inst):
            return None
        return cols

    def _check_ids(self, docs: Sequence[dict[str, Any]], inst: Sequence[str]) -> bool:
        """Validate one document per new instrument id with the schema (the id rule depends only on it)."""
        firsts = {name: doc for name, doc in zip(inst, docs, strict=True) if name not in self._ids}
        try:
            for doc in firsts.values():
                self.contract.validate("quotes", doc)
        except SchemaViolation:
            return False
        self._ids.update(firsts)
        return True


_encode: Callable[[str], bytes] = str.encode


def _sizes(docs: Sequence[dict[str, Any]], extra: int) -> tuple[F64, F64] | None:
    """The displayed sizes of a batch whose ``extra`` fields beyond the required five are optional ones
    of the right types (else None: the per-record path judges the batch)."""
    present = [[d[f] for d in docs if f in d] for f in _OPTIONAL]
    if sum(map(len, present)) != extra:
        return None  # a field the schema does not have
    for values in present[:2]:
        if not set(map(type, values)) <= _NUMBERS or (values and min(values) < 0):
            return None
    if not set(map(type, present[2])) <= {str} or (present[2] and max(map(len, present[2])) > 64):
        return None
    bid = np.array([d.get("bid_size", _NAN) for d in docs], dtype=np.float64)
    ask = np.array([d.get("ask_size", _NAN) for d in docs], dtype=np.float64)
    return bid, ask


def _valid_prices(bid: F64, ask: F64) -> bool:
    return bool(((bid > 0.0) & (ask > 0.0) & (bid <= ask)).all())


def _implements(schema: dict[str, Any], defs: dict[str, Any]) -> bool:
    """Whether the quotes schema still has the shape the fast path checks (else it stays off)."""
    props = schema.get("properties", {})
    plain_int = {"type": "integer", "minimum": 0}
    return (
        {k: v for k, v in defs["seq"].items() if k != "description"} == plain_int
        and {k: v for k, v in defs["ts"].items() if k != "description"} == plain_int
        and {"type": "number"} in defs["price"].get("anyOf", ())
        and schema.get("type") == "object"
        and sorted(schema.get("required", ())) == sorted(_FIELDS)
        and all(str(props.get(f, {}).get("$ref", "")).endswith(ref) for f, ref in _REFS.items())
        and all(str(props.get(f, {}).get("$ref", "")).endswith("nonNegativeNumber") for f in _OPTIONAL[:2])
        and {"type": "number", "minimum": 0} in defs["nonNegativeNumber"].get("anyOf", ())
        and props.get("venue") == {"type": "string", "maxLength": 64}
        and "additionalProperties" not in schema
        and not any(k in schema for k in ("allOf", "anyOf", "oneOf", "if", "not", "dependentRequired"))
    )
