"""The shared worker-process handle's parts that need no running worker."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from streamproc.worker_process import WorkerProcess


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_log_events_reads_json_lines_and_skips_the_rest(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_bytes(
        b'{"event": "partitions loaded", "accounts": 3}\n'
        b"a faust banner line mentioning partitions loaded\n"
        b'\x1b[2m{"event": "partitions loaded", "accounts": 4}\n'  # a terminal escape before it
        b'{"event": "partitions loaded and more"}\n'
    )
    w = WorkerProcess({}, log)
    assert [e["accounts"] for e in w.log_events("partitions loaded")] == [3, 4]


def test_before_start_it_is_not_alive_and_stop_is_a_no_op(tmp_path: Path) -> None:
    w = WorkerProcess({"STREAMPROC_WEB_PORT": "6123"}, tmp_path / "w.log")
    assert w.port == 6123 and not w.alive and w.logs() == ""
    assert w.stop() is None
    with pytest.raises(RuntimeError, match="not started"):
        w.pause()


def test_probes_answer_nothing_while_no_worker_serves(tmp_path: Path) -> None:
    w = WorkerProcess({"STREAMPROC_WEB_PORT": str(_closed_port())}, tmp_path / "w.log")
    assert w.get("/ready") == (0, b"")
    assert not w.ready() and w.samples() == {} and w.metric("streamproc_orders_total") == 0.0
