"""The limits file: parsed at start-up, and every mistake refused with the file, the line and what to fix
(the worker does not start on it)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamproc.core import Band
from streamproc.limits_file import LimitsError, load
from streamproc.settings import Settings, SettingsError

GOOD = """\
version = "2026-12-03.1"
tiers = ["large", "bond", "dividend", "Micro"]

[default]
band = { abs = 0.03 }
max_leg_notional = 250000
spread_budget_bps = 100
slippage_bps = 10

[tier.micro]
band = { abs = 0.02 }
spread_budget_bps = 80

[instrument."MC-0007"]
eligible = false
max_participation = 0.1
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "limits.toml"
    path.write_text(text)
    return path


def test_a_good_file(tmp_path: Path) -> None:
    lim = load(write(tmp_path, GOOD))
    assert (lim.version, lim.tiers, lim.source) == (
        "2026-12-03.1",
        ("large", "bond", "dividend", "micro"),
        str(tmp_path / "limits.toml"),
    )
    assert lim.default_band == Band(abs=0.03) and lim.tier_bands() == {"micro": Band(abs=0.02)}
    assert lim.resolve("MC-0007", "micro")[:5] == (250_000.0, 80.0, 10.0, False, 0.1)
    assert lim.resolve("EQ", "large")[:5] == (250_000.0, 100.0, 10.0, True, math.inf)
    assert load(write(tmp_path, 'version = "v"\n')).resolve("X", None)[:5] == (
        math.inf,
        math.inf,
        0.0,
        True,
        math.inf,
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("spread_budget_bps = 80", "spread_budget = 80"),
            r"limits.toml:12: tier.micro.spread_budget: unknown limit",
        ),
        (
            ("max_leg_notional = 250000", 'max_leg_notional = "lots"'),
            r"limits.toml:6: default.max_leg_notional: must be a number",
        ),
        (
            ("max_leg_notional = 250000", "max_leg_notional = -5"),
            r"limits.toml:6: default.max_leg_notional: max_leg_notional must be positive",
        ),
        (
            ("eligible = false", "eligible = 0"),
            r"limits.toml:15: instrument.MC-0007.eligible: must be true or false",
        ),
        (
            ("[tier.micro]", "[tier.microcap]"),
            r"limits.toml:10: tier.microcap: tier 'microcap' is not declared",
        ),
        (('version = "2026-12-03.1"', "# no version"), r"limits.toml: version: required"),
        (
            ("band = { abs = 0.02 }", "band = { abs = 2 }"),
            r"limits.toml:11: tier.micro.band: band abs must be a positive fraction",
        ),
        (("[default]", "[defaults]"), r"limits.toml:4: defaults: unknown key"),
        (
            ("max_participation = 0.1", "max_participation = 2"),
            r"limits.toml:16: instrument.MC-0007.max_participation: max_participation must be within",
        ),
        (("spread_budget_bps = 80", "spread_budget_bps = = 80"), r"limits.toml: not valid TOML: .*line 12"),
    ],
)
def test_each_mistake_names_the_line_and_what_to_fix(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    old, new = change
    assert old in GOOD
    with pytest.raises(LimitsError, match=expected):
        load(write(tmp_path, GOOD.replace(old, new, 1)))


def test_the_worker_settings_refuse_a_bad_file_and_undeclared_tiers(tmp_path: Path) -> None:
    bad = write(tmp_path, GOOD.replace("[tier.micro]", "[tier.microcap]"))
    with pytest.raises(SettingsError, match=r"STREAMPROC_LIMITS_FILE=.*limits.toml:10: tier.microcap"):
        Settings.from_env({"STREAMPROC_LIMITS_FILE": str(bad)})
    with pytest.raises(SettingsError, match="cannot read the limits file"):
        Settings.from_env({"STREAMPROC_LIMITS_FILE": str(tmp_path / "missing.toml")})
    with pytest.raises(SettingsError, match=r"STREAMPROC_QUOTE_MAX_AGE_BY_TIER names tiers \['microcap'\]"):
        Settings.from_env({"STREAMPROC_QUOTE_MAX_AGE_BY_TIER": "microcap=60"})
    good = Settings.from_env(
        {"STREAMPROC_LIMITS_FILE": str(write(tmp_path, GOOD)), "STREAMPROC_OUTLIER_MOVE_BY_TIER": "MICRO=0.5"}
    )
    assert good.limits.version == "2026-12-03.1" and good.outlier_move_by_tier == {"micro": 0.5}
    assert good.redacted()["limits"] == f"2026-12-03.1 ({tmp_path / 'limits.toml'})"


def test_the_worker_refuses_to_start_on_a_bad_file_and_says_where(tmp_path: Path) -> None:
    bad = write(tmp_path, GOOD.replace("spread_budget_bps = 80", "spread_budget = 80"))
    env = {"PATH": os.environ.get("PATH", ""), "STREAMPROC_LIMITS_FILE": str(bad)}
    done = subprocess.run(
        [sys.executable, "-m", "streamproc", "worker"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "limits.toml:12: tier.micro.spread_budget: unknown limit" in done.stderr
