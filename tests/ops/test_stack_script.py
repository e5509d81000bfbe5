"""ops/local/stack: idempotent up, down stops only its own, clear errors for a bad environment."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import STACK, Stack


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_stack(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(STACK), *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **env}
    )


@pytest.fixture
def isolated(tmp_path: Path) -> dict[str, str]:
    """Settings for a private stack: own dirs, own free ports, empty jar cache."""
    return {
        "STREAMPROC_STACK_DIR": str(tmp_path / "state"),
        "STREAMPROC_CACHE_DIR": str(tmp_path / "cache"),
        "STREAMPROC_KAFKA_PORT": str(free_port()),
        "STREAMPROC_KAFKA_CONTROLLER_PORT": str(free_port()),
        "STREAMPROC_REDIS_PORT": str(free_port()),
    }


@pytest.fixture
def foreign_listener() -> Iterator[int]:
    """A TCP server on a free port that answers like a web server, not Kafka or Redis."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield int(srv.getsockname()[1])
    stop.set()
    t.join()
    srv.close()


def kafka_pids() -> set[int]:
    out = subprocess.run(["pgrep", "-f", "kafka.Kafka"], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


@pytest.mark.integration
def test_up_twice_starts_nothing_the_second_time(stack: Stack) -> None:
    before = kafka_pids()
    proc = run_stack("up", env={})
    assert proc.returncode == 0, proc.stderr
    assert kafka_pids() == before
    status = run_stack("status", env={})
    assert status.returncode == 0, status.stdout + status.stderr


def test_missing_java_is_a_clear_error(isolated: dict[str, str]) -> None:
    proc = run_stack("up", "kafka", env={**isolated, "STREAMPROC_JAVA": "/nonexistent/java"})
    assert proc.returncode != 0
    assert "Java is not installed" in proc.stderr


def test_missing_maven_is_a_clear_error(isolated: dict[str, str]) -> None:
    proc = run_stack("up", "kafka", env={**isolated, "STREAMPROC_MVN": "/nonexistent/mvn"})
    assert proc.returncode != 0
    assert "Maven (mvn) is not installed" in proc.stderr


def test_unreachable_maven_central_is_a_clear_error(isolated: dict[str, str], tmp_path: Path) -> None:
    settings = tmp_path / "settings.xml"
    settings.write_text(
        f"""<settings><localRepository>{tmp_path / "m2"}</localRepository>
        <mirrors><mirror><id>dead</id><mirrorOf>*</mirrorOf><url>http://127.0.0.1:{free_port()}/maven2</url></mirror></mirrors>
        </settings>"""
    )
    proc = run_stack("up", "kafka", env={**isolated, "STREAMPROC_MAVEN_SETTINGS": str(settings)}, timeout=300)
    assert proc.returncode != 0
    assert "could not fetch Kafka" in proc.stderr
    assert not (Path(isolated["STREAMPROC_CACHE_DIR"]) / "kafka-4.1.1" / "libs").exists()


def test_port_taken_by_a_foreign_process_is_refused(isolated: dict[str, str], foreign_listener: int) -> None:
    for component, var in (("kafka", "STREAMPROC_KAFKA_PORT"), ("redis", "STREAMPROC_REDIS_PORT")):
        proc = run_stack("up", component, env={**isolated, var: str(foreign_listener)})
        assert proc.returncode != 0, component
        assert f"port {foreign_listener} is taken" in proc.stderr


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_down_stops_only_what_it_started(isolated: dict[str, str], tmp_path: Path) -> None:
    foreign_port = free_port()
    foreign = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(foreign_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        env_foreign = {**isolated, "STREAMPROC_REDIS_PORT": str(foreign_port)}
        for _ in range(50):
            if run_stack("status", env=env_foreign).stdout.count("redis: ready"):
                break
        assert run_stack("up", "redis", env=env_foreign).returncode == 0  # reuses it
        assert run_stack("down", "redis", env=env_foreign).returncode == 0
        assert foreign.poll() is None, "down stopped a Redis it did not start"

        own = run_stack("up", "redis", env=isolated)
        assert own.returncode == 0, own.stderr
        pidfile = (
            Path(isolated["STREAMPROC_STACK_DIR"])
            / f"redis-{isolated['STREAMPROC_REDIS_PORT']}"
            / "redis.pid"
        )
        pid = int(pidfile.read_text())
        assert run_stack("down", "redis", env=isolated).returncode == 0
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finally:
        foreign.terminate()
        foreign.wait(10)
