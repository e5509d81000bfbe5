"""The README's run command: `streamproc demo` runs a real worker and shows its orders and dead letters."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, Stack

pytestmark = pytest.mark.integration


def test_demo_runs_a_worker_and_prints_its_orders(stack: Stack) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap, "REDIS_URL": stack.redis_url}
    proc = subprocess.run(
        [sys.executable, "-m", "streamproc", "demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    orders = [line.split()[2].rstrip(":") for line in proc.stdout.splitlines() if line.startswith("ORDER ")]
    assert sorted(orders) == ["balanced-60-40", "edge-60-40", "micro-sleeve"], proc.stdout
    assert "dead letter from" in proc.stdout
