"""The limits file (``STREAMPROC_LIMITS_FILE``, TOML): parsed and validated at start-up into
``core.limits.Limits``, with errors that name the file, the line and what to fix.

```toml
version = "2026-12-03.1"                       # required: logged and exposed by every worker
tiers = ["large", "bond", "dividend", "micro"]  # reference data naming another tier is dead-lettered

[default]
band = { abs = 0.03 }
max_leg_notional = 250000
spread_budget_bps = 100
slippage_bps = 10
eligible = true

[tier.micro]
band = { abs = 0.02 }
spread_budget_bps = 80
max_participation = 0.1                        # a leg at most 10 % of the displayed bid/ask size
max_weight = 0.05                              # no buy takes a microcap above 5 % of the account

[instrument."MC-0007"]
eligible = false
```
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from streamproc.core.bands import Band
from streamproc.core.limits import LevelLimits, Limits

_TOP = {"version", "tiers", "default", "tier", "instrument"}
_NUMBERS = ("max_leg_notional", "spread_budget_bps", "slippage_bps", "max_participation", "max_weight")
_FIELDS = {"band", "eligible", *_NUMBERS}


class LimitsError(ValueError):
    """The limits file cannot be used; the message says where and what to fix."""


def load(path: Path) -> Limits:
    """The limits a file states (LimitsError naming the line and the problem)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LimitsError(f"{path}: cannot read the limits file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise LimitsError(f"{path}: not UTF-8 text: {exc}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LimitsError(f"{path}: not valid TOML: {exc}") from None
    return parse(doc, text, str(path))


def parse(doc: Mapping[str, Any], text: str = "", source: str = "limits") -> Limits:
    """Limits from a parsed TOML document (``text``: the file, for line numbers)."""

    def fail(table: str, key: str | None, why: str) -> LimitsError:
        line = _line_of(text, table, key)
        where = f"{source}:{line}" if line else source
        what = ".".join(p for p in (table, key) if p) or "the file"
        return LimitsError(f"{where}: {what}: {why}")

    unknown = sorted(set(doc) - _TOP)
    if unknown:
        raise fail("", unknown[0], f"unknown key; the file holds {', '.join(sorted(_TOP))}")
    version = doc.get("version")
    if not isinstance(version, str) or not version.strip():
        raise fail("", "version", "required: a non-empty string (workers log and expose it)")
    tiers = doc.get("tiers")
    if tiers is None:
        tiers = list(Limits().tiers)
    if not isinstance(tiers, list) or not tiers or not all(isinstance(t, str) and t for t in tiers):
        raise fail("", "tiers", "must be a non-empty list of tier names")
    declared = [t.lower() for t in tiers]
    if len(set(declared)) != len(declared):
        raise fail("", "tiers", f"names a tier twice (case-insensitive): {tiers}")

    def level(table: str, raw: object) -> LevelLimits:
        if not isinstance(raw, dict):
            raise fail(table, None, "must be a table of limits")
        bad = sorted(set(raw) - _FIELDS)
        if bad:
            raise fail(table, bad[0], f"unknown limit; a level may state {', '.join(sorted(_FIELDS))}")
        for key in _NUMBERS:
            v = raw.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
                raise fail(table, key, f"must be a number, got {v!r}")
        if "eligible" in raw and not isinstance(raw["eligible"], bool):
            raise fail(table, "eligible", f"must be true or false, got {raw['eligible']!r}")
        try:
            band = _band(raw["band"]) if "band" in raw else None
            return LevelLimits(
                band=band,
                max_leg_notional=_num(raw.get("max_leg_notional")),
                spread_budget_bps=_num(raw.get("spread_budget_bps")),
                slippage_bps=_num(raw.get("slippage_bps")),
                eligible=raw.get("eligible"),
                max_participation=_num(raw.get("max_participation")),
                max_weight=_num(raw.get("max_weight")),
            )
        except ValueError as exc:
            about = next((k for k in raw if k in str(exc)), None)
            raise fail(table, about, str(exc)) from None

    default = level("default", doc.get("default", {}))
    per_tier: dict[str, LevelLimits] = {}
    for name, raw in _table(doc, "tier", fail).items():
        if name.lower() not in declared:
            raise fail(f"tier.{name}", None, f"tier {name!r} is not declared in tiers {declared}")
        per_tier[name.lower()] = level(f"tier.{name}", raw)
    per_instrument = {
        name: level(f"instrument.{name}", raw) for name, raw in _table(doc, "instrument", fail).items()
    }
    return Limits(version.strip(), tuple(declared), default, per_tier, per_instrument, source)


def _table(doc: Mapping[str, Any], name: str, fail: Any) -> dict[str, Any]:
    raw = doc.get(name, {})
    if not isinstance(raw, dict):
        raise fail("", name, "must be a table of tables ([" + name + ".NAME])")
    return raw


def _num(v: object) -> float | None:
    return None if v is None else float(v)  # type: ignore[arg-type]


def _band(raw: object) -> Band:
    if not isinstance(raw, dict) or not raw or set(raw) - {"abs", "rel"}:
        raise ValueError(f"band must be a table with abs and/or rel, got {raw!r}")
    for k, v in raw.items():
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError(f"band {k} must be a number, got {v!r}")
    return Band(abs=_num(raw.get("abs")), rel=_num(raw.get("rel")))


_HEADER = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]\s*(#.*)?$")


def _line_of(text: str, table: str, key: str | None) -> int | None:
    """The line (1-based) of ``key`` in ``[table]`` (``table`` "" is the top level), else the table's
    header line; None when the text does not show it (inline tables, no text)."""
    current, header = "", None
    for n, line in enumerate(text.splitlines(), start=1):
        m = _HEADER.match(line)
        if m:
            current = m.group(1).replace('"', "").replace("'", "").replace(" ", "")
            if current == table:
                header = n
            if key and not table and (current == key or current.startswith(key + ".")):
                return n  # a top-level key written as a table
            continue
        if key and current == table and re.match(rf"^\s*\"?{re.escape(key)}\"?\s*=", line):
            return n
    return header
