"""The `streamproc` command: the benchmark runs end to end (no timing asserted), the demo trades."""

from __future__ import annotations

import json
from pathlib import Path

from streamproc.cli import main
from streamproc.demo import scenario


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


def test_demo_scenario_orders_the_breaching_accounts_and_respects_hysteresis() -> None:
    lines = scenario()
    orders = [line for line in lines if line.strip().startswith("order ")]
    assert {line.split()[1].rstrip(":") for line in orders} == {
        "balanced-60-40",
        "micro-sleeve",
        "edge-60-40",
    }
    assert "sell" in orders[0] and "buy" in orders[0]
    assert lines[-1].startswith("re-evaluated after answering: 0 breaching")
