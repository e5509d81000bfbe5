"""Operator commands fail in one line: an unreachable broker is named with the setting to check (no
traceback), and a reader that goes away (`| head`) ends the command quietly, not as a Redis error."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from streamproc import cli
from tests.conftest import ROOT


def test_an_unreachable_broker_is_one_line_naming_the_setting() -> None:
    env = {"PATH": os.environ.get("PATH", ""), "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    done = subprocess.run(
        [sys.executable, "-m", "streamproc", "inspect", "topics"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]  # one line
    assert done.stderr.startswith(
        "streamproc: Kafka is not reachable at KAFKA_BOOTSTRAP_SERVERS (127.0.0.1:1)"
    )
    assert "Traceback" not in done.stderr


def test_a_closed_pipe_ends_the_command_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    def closed(_args: argparse.Namespace) -> int:
        raise BrokenPipeError

    monkeypatch.setattr(cli, "_cmd_inspect", closed)  # `inspect status` writing into a closed pipe
    saved = os.dup(sys.stdout.fileno())
    try:
        assert cli.main(["inspect", "status"]) == 141
    finally:
        os.dup2(saved, sys.stdout.fileno())
        os.close(saved)
