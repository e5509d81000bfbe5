"""The one way to run `python -m streamproc worker` as a subprocess (the demo, the benchmarks and the
integration tests): start it with an environment and its output in a log file, pause, resume, signal
and stop it, and probe it: /metrics, /ready, its peak memory and its JSON log events."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import orjson
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]  # metric -> sorted labels -> value


class WorkerProcess:
    """One `streamproc worker` process, run with ``env`` (its web port from STREAMPROC_WEB_PORT), its
    stdout and stderr in ``log_path``. Not started until ``start()``.

    ``cwd``: the directory it runs in (this one when None). ``new_session``: its own process group, so a
    Ctrl-C in the terminal reaches only the caller, which then stops its workers in order. ``append``:
    add to an existing log instead of starting it afresh. ``argv``: another entry point (a test's worker
    with an injected fault) instead of `python -m streamproc worker`."""

    def __init__(
        self,
        env: Mapping[str, str],
        log_path: Path,
        *,
        cwd: Path | None = None,
        new_session: bool = True,
        append: bool = False,
        argv: Sequence[str] | None = None,
    ) -> None:
        self.argv = list(argv or [sys.executable, "-m", "streamproc", "worker"])
        self.env = dict(env)
        self.log_path = log_path
        self.port = int(self.env.get("STREAMPROC_WEB_PORT", "6066"))
        self.cwd = cwd
        self.new_session = new_session
        self.append = append
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = float("nan")  # perf_counter() at start()

    # ---- the process ----------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the process (once)."""
        if self.proc is not None:
            raise RuntimeError(f"worker already started (pid {self.proc.pid})")
        with self.log_path.open("ab" if self.append else "wb") as out:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=self.new_session,
            )
        self.started = time.perf_counter()
        return self

    def _running(self) -> subprocess.Popen[bytes]:
        if self.proc is None:
            raise RuntimeError("worker not started")
        return self.proc

    @property
    def alive(self) -> bool:
        """Started and not exited."""
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        """Stop the caller with the log's path when the worker has exited."""
        proc = self._running()
        if proc.poll() is not None:
            raise SystemExit(f"the worker exited with {proc.returncode}; see {self.log_path}")

    def pause(self) -> None:
        """SIGSTOP: it keeps its state and connections but does no work until ``resume()``."""
        self._running().send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after ``pause()``."""
        self._running().send_signal(signal.SIGCONT)

    def kill(self, sig: int = signal.SIGKILL, timeout_s: float = 60.0) -> int:
        """Send ``sig`` and wait for the process to exit; returns the exit code."""
        proc = self._running()
        proc.send_signal(sig)
        return proc.wait(timeout=timeout_s)

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM (resuming it first if paused), wait, SIGKILL if it hangs; returns the exit code (None
        when it was never started). Stopping a stopped worker only returns its code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def peak_rss_mib(self) -> float:
        """Peak resident memory of the worker process so far (VmHWM)."""
        for line in Path(f"/proc/{self._running().pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    # ---- its log --------------------------------------------------------------------------------

    def logs(self) -> str:
        """Everything it wrote so far ("" before it starts)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_events(self, event: str) -> list[dict[str, Any]]:
        """The JSON log records with this ``event`` (STREAMPROC_LOG_FORMAT=json)."""
        out = []
        for line in self.log_path.read_bytes().splitlines():
            if event.encode() in line:
                try:
                    doc = orjson.loads(line[line.find(b"{") :])  # a terminal escape may precede it
                except orjson.JSONDecodeError:
                    continue
                if isinstance(doc, dict) and doc.get("event") == event:
                    out.append(doc)
        return out

    # ---- its web endpoints ----------------------------------------------------------------------

    def get(self, path: str, timeout_s: float = 2.0) -> tuple[int, bytes]:
        """(status, body) of a GET on its web port; (0, b"") while nothing answers."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout_s) as r:
                return int(r.status), r.read()
        except urllib.error.HTTPError as exc:  # 503 from /ready: the body says why
            try:
                return exc.code, exc.read()
            except OSError:
                return exc.code, b""
        except OSError:
            return 0, b""

    def samples(self) -> Samples:
        """Every sample of /metrics (empty while the worker is not serving)."""
        status, body = self.get("/metrics")
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
        return self.get("/ready")[0] == 200
