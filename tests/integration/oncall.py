"""Runbook commands as an on-call engineer runs them: `streamproc ...` in a fresh process, its settings
from the environment (the namespace's), as the tests of incidents run them."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT, Stack


def cli(stack: Stack, namespace: str, *args: str, **env_: str) -> subprocess.CompletedProcess[str]:
    """`streamproc ARGS` as an on-call engineer runs it: a fresh process, settings from the environment
    (``env_`` overrides it)."""
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap,
        "REDIS_URL": stack.redis_url,
        "STREAMPROC_NAMESPACE": namespace,
        "PATH": "",
        **env_,
    }
    return subprocess.run(
        [sys.executable, "-m", "streamproc", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
