"""The `streamproc` command: the benchmark runs end to end (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from streamproc.cli import main


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
