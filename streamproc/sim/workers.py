"""`streamproc worker` processes for the demo and the benchmarks: start one with its JSON log in a file,
read its /metrics and /ready, its peak memory and its log events, and stop it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]  # metric -> sorted labels -> value


class WorkerProcess:
    """One `streamproc worker` process started with ``env`` (its web port from STREAMPROC_WEB_PORT)."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self.port = int(env.get("STREAMPROC_WEB_PORT", "6066"))
        with log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streamproc", "worker"],
                env=dict(env),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches the demo, which stops its workers in order
            )
        self.started = time.perf_counter()

    def _get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return int(r.status), r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, b""
        except OSError:
            return 0, b""

    def samples(self) -> Samples:
        """Every sample of /metrics (empty while the worker is not serving)."""
        status, body = self._get("/metrics")
        out: Samples = defaultdict(dict)
        if status != 200:
            return out
        for family in text_string_to_metric_families(body.decode()):
            for s in family.samples:
                out[s.name][tuple(sorted(s.labels.items()))] = float(s.value)
        return out

    def metric(self, name: str, **labels: str) -> float:
        """One sample of /metrics (0 when absent or the worker is not serving yet)."""
        return self.samples().get(name, {}).get(tuple(sorted(labels.items())), 0.0)

    def ready(self) -> bool:
        """Whether /ready answers 200."""
        return self._get("/ready")[0] == 200

    def peak_rss_mib(self) -> float:
        """Peak resident memory of the worker process so far (VmHWM)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def log_events(self, event: str) -> list[dict[str, Any]]:
        """The JSON log records with this ``event``."""
        out = []
        for line in self.log_path.read_bytes().splitlines():
            if event.encode() in line:
                try:
                    doc = orjson.loads(line[line.find(b"{") :])  # a terminal escape may precede it
                except orjson.JSONDecodeError:
                    continue
                if doc.get("event") == event:
                    out.append(doc)
        return out

    def check_alive(self) -> None:
        """Stop the caller with the log's path when the worker has exited."""
        if self.proc.poll() is not None:
            raise SystemExit(f"the worker exited with {self.proc.returncode}; see {self.log_path}")

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM (resuming it first if paused), wait, kill if it hangs; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)
