"""Loads schemas/*.json (the single source of truth) and compiles one validator per topic."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson

TOPICS = ("quotes", "positions", "targets", "instruments", "orders", "alerts", "deadletter", "executions")


class SchemaViolation(ValueError):
    """A document does not match its topic's schema; the message names the field and the rule."""


def _describe(exc: fastjsonschema.JsonSchemaValueException) -> str:
    """'field: what is expected (got value)' from a fastjsonschema error."""
    path = ".".join(str(p) for p in (exc.path or [])[1:]) or "value"
    definition = exc.definition if isinstance(exc.definition, dict) else {}
    alternatives = definition.get(exc.rule) if exc.rule in ("anyOf", "oneOf") else None
    # the alternatives in a few words, not the schema's description (design notes for its readers)
    expected = (
        "must be " + " or ".join(map(_alternative, alternatives)) if isinstance(alternatives, list) else None
    )
    message = expected or exc.message.removeprefix(f"data.{path} ").removeprefix("data ")
    got = orjson.dumps(exc.value).decode()[:80] if exc.value is not None else "nothing"
    return f"{path}: {message} (got {got})"


def _alternative(alt: Any) -> str:
    """One alternative of an anyOf/oneOf, for an operator: ``a number >= 0``, ``a decimal string``."""
    if not isinstance(alt, dict):
        return str(alt)
    if "required" in alt and "type" not in alt:
        return "an object with " + ", ".join(alt["required"])
    if "const" in alt:
        return orjson.dumps(alt["const"]).decode()
    if "enum" in alt:
        return "one of " + ", ".join(orjson.dumps(v).decode() for v in alt["enum"])
    kind = alt.get("type")
    if kind == "string" and "[0-9]" in str(alt.get("pattern", "")):
        return "a decimal string"
    if kind in ("number", "integer"):
        bound = next((f" {op} {alt[k]}" for k, op in _BOUNDS if k in alt), "")
        return f"a {'JSON number' if kind == 'number' else 'integer'}{bound}"
    if kind is not None:
        return f"a {kind}"
    if "$ref" in alt:
        return str(alt["$ref"]).rpartition("/")[2]
    return orjson.dumps(alt).decode()[:40]


_BOUNDS = (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"))


class Contract:
    """Compiled validators and examples of every topic's schema."""

    def __init__(self, schemas_dir: Path) -> None:
        self.dir = schemas_dir
        self.schemas: dict[str, dict[str, Any]] = {}
        for path in sorted(schemas_dir.glob("*.json")):
            doc = orjson.loads(path.read_bytes())
            self.schemas[path.stem] = doc
        by_id = {doc["$id"]: doc for doc in self.schemas.values()}
        missing = [t for t in TOPICS if t not in self.schemas]
        if missing:
            raise FileNotFoundError(f"{schemas_dir} lacks schemas for {', '.join(missing)}")

        def resolve(uri: str) -> dict[str, Any]:
            if uri not in by_id:
                raise FileNotFoundError(f"schema {uri} is not in {schemas_dir} (only local refs are used)")
            return by_id[uri]

        self._validators: dict[str, Callable[[Any], Any]] = {
            topic: fastjsonschema.compile(self.schemas[topic], handlers={"https": resolve})
            for topic in TOPICS
        }

    def validate(self, topic: str, doc: Any) -> None:
        """Raise SchemaViolation when ``doc`` does not match ``topic``'s schema."""
        try:
            self._validators[topic](doc)
        except fastjsonschema.JsonSchemaValueException as exc:
            raise SchemaViolation(_describe(exc)) from None

    def examples(self, topic: str) -> list[Any]:
        """The schema's own examples (each must validate)."""
        return list(self.schemas[topic].get("examples", []))
