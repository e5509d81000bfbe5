"""The `streamproc` command: the benchmark runs end to end (no timing asserted)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from streamproc.cli import build_parser, main
from streamproc.sim import fill


def test_bench_kernel_runs_small_and_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "kernel.json"
    code = main(
        [
            "bench",
            "kernel",
            "--accounts",
            "3000",
            "--instruments",
            "300",
            "--loop-sample",
            "300",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    figures = json.loads(out.read_text())
    assert figures["accounts"] == 3000
    assert figures["price_batch"]["affected_accounts"] > 0
    assert figures["speedup_full_vs_loop"] > 0 and figures["full_eval_ms"]["best"] > 0
    assert figures["groups"]["per_account"] == 2 and figures["groups"]["full_eval_ms"]["best"] > 0
    assert set(figures["ratios"]) == {"full_eval_over_floor", "grouped_eval_over_floor", "grouped_over_plain"}


def test_the_fill_options_make_its_policy_and_values_out_of_range_are_refused() -> None:
    options = "--fill-ratio 0.5 --fill-latency-ms 200 --reject-share 0.1 --reject-instruments A,B --reject C"
    args = build_parser().parse_args(["fill", *options.split(), "--ignore-cancels", "--fee-bps", "1"])
    assert fill.policy(args) == fill.Policy(
        fee_bps=Decimal("1.0"),
        ratio=Decimal("0.5"),
        latency_ms=200,
        reject=frozenset({"C"}),
        reject_instruments=frozenset({"A", "B"}),
        reject_share=0.1,
        ignore_cancels=True,
    )
    assert fill.policy(build_parser().parse_args(["fill"])) == fill.Policy()  # at once and whole
    refused = ["--fill-ratio 0", "--fill-ratio 1.5", "--fill-ratio nan", "--reject-share 2"]
    for bad in [*refused, "--fill-latency-ms -1", "--fill-latency-ms 0.5"]:
        with pytest.raises(SystemExit):
            build_parser().parse_args(["fill", *bad.split()])
