"""Session-wide fixtures: the one local stack (real Kafka + Redis) all integration tests share."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STACK = ROOT / "ops" / "local" / "stack"


@dataclass(frozen=True)
class Stack:
    bootstrap: str
    redis_url: str


@pytest.fixture(scope="session")
def stack() -> Stack:
    """The local stack, started when it is not running (idempotent: a running one is reused)."""
    proc = subprocess.run([str(STACK), "up"], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"ops/local/stack up failed:\n{proc.stdout}\n{proc.stderr}")
    kafka_port = os.environ.get("STREAMPROC_KAFKA_PORT", "9092")
    redis_port = os.environ.get("STREAMPROC_REDIS_PORT", "6379")
    return Stack(bootstrap=f"127.0.0.1:{kafka_port}", redis_url=f"redis://127.0.0.1:{redis_port}/0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`pytest -m "not integration"` runs with no broker and no Redis: a test that uses the stack (or
    the fixtures built on it) must carry the integration marker."""
    unmarked = [
        item.nodeid
        for item in items
        if "stack" in getattr(item, "fixturenames", ()) and item.get_closest_marker("integration") is None
    ]
    if unmarked:
        raise pytest.UsageError(f"tests use the stack without @pytest.mark.integration: {unmarked}")
