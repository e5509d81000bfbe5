"""The README's run command: `streamproc demo` closes the loop drift -> order -> fill -> back in band with
two real workers, raises and resolves alerts for the faults it injects, closes and opens its market on a
simulated XNYS clock without a page or an order in the night, stops cleanly and cleans up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import redis

from tests.conftest import ROOT, Stack

pytestmark = pytest.mark.integration


@pytest.mark.timeout(300)  # above the run's own limit, so a hang fails with the demo's output
def test_demo_closes_the_loop_and_alerts_on_the_faults_it_injects(stack: Stack, tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap, "REDIS_URL": stack.redis_url}
    args = ["demo", "--duration-s", "75", "--web-port", "6266", "--summary", str(summary)]
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "streamproc", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
    except subprocess.TimeoutExpired as hung:
        logs = "".join(f"\n---- {p.name} ----\n" + p.read_text()[-2000:] for p in _worker_logs())
        pytest.fail(f"the demo did not end in 240 s: {_tail(hung.stdout)}{_tail(hung.stderr)}{logs}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # not a terminal: plain progress lines every 5 s, and the scenario's steps, as they happen
    progress = [line for line in proc.stdout.splitlines() if " workers  quotes/s " in line]
    assert len(progress) >= 8, proc.stdout[-3000:]
    assert any("stops quoting" in line for line in proc.stdout.splitlines())
    doc = orjson.loads(summary.read_bytes())
    if doc["worker_exit_codes"] != [0, 0]:  # a stop that overran: its log says where it waited
        logs = "".join(f"\n---- {p.name} ----\n" + p.read_text()[-12000:] for p in _worker_logs())
        pytest.fail(f"workers exited with {doc['worker_exit_codes']}:{logs}")
    # the loop closed: orders were filled and the fills came back as positions
    assert doc["orders"] > 0 and doc["fills"] > 0 and doc["positions_published_by_fills"] > 0
    assert doc["first_order_s"] is not None
    # order management answers in parts (ratio 0.5): orders stay working over several parts
    assert doc["fill_parts"] > doc["fills"] > 0
    assert isinstance(doc["cancels"], dict) and doc["fill_rejected"] >= 0
    # the stopped instrument raised quote_stale, and it resolved when its quotes resumed
    assert doc["alerts"].get("quote_stale:firing", 0) >= 1
    assert doc["alerts"].get("quote_stale:resolved", 0) >= 1
    # the injected bad records were dead-lettered, and the bad quotes raised their alerts
    assert sum(doc["deadletters"].values()) > 0
    assert any(doc["alerts"].get(f"{t}:firing", 0) for t in ("quote_gap", "quote_crossed", "quote_outlier"))
    # the models' groups and sleeves trade live: asset-class orders, and microcap sleeves stopped (a
    # trading day a second: 60 days of microcaps) with one sleeve_stopped alert each and a liquidation
    assert doc["orders_by_reason"].get("group", 0) > 0
    assert doc["sleeves_stopped"] > 0 and doc["orders_by_reason"].get("sleeve stop", 0) > 0
    assert doc["alerts"].get("sleeve_stopped:resolved", 0) > 0  # sold out, the episode ends
    # it runs with ops/demo/limits.toml: a restricted microcap (its holders need adjustment, it is
    # never bought) and thin microcap books (legs cut to 20 % of the shares shown, the rest waiting)
    assert doc["alerts"].get("needs_adjustment:firing", 0) > 0
    assert doc["restricted_left_out_peak"] > 0 and doc["depth_waiting_notional_peak"] > 0
    # its market closed after a 45 s session for a 20 s night: no data alert, no order, the accounts
    # closed; at the open orders came after the 5 s opening delay and no storm held them
    night = doc["session"]
    assert night["calendar"].startswith("sim:XNYS:45:20:") and night["closes"] == 1, night
    assert night["alerts_fired_while_closed"] == {} and night["orders_while_closed"] == 0, night
    assert night["accounts_closed_peak"] > doc["accounts"] // 2, night
    assert night["first_order_after_open_s"] is not None and night["first_order_after_open_s"] >= 4.5, night
    assert night["breach_storms_after_open"] == 0, night
    assert any("the market opens" in line for line in proc.stdout.splitlines())
    # nothing of the demo's namespace is left behind
    client = redis.Redis.from_url(stack.redis_url)
    assert not list(client.scan_iter(match=f"{doc['namespace']}:*", count=1000))


def _tail(out: bytes | str | None) -> str:
    text = out.decode(errors="replace") if isinstance(out, bytes) else (out or "")
    return text[-3000:]


def _worker_logs() -> list[Path]:
    return sorted((ROOT / "bench-results").glob("demo-worker-*.log"))
