"""A worker starts as the image runs it: an unprivileged user (no home, no write access) in a root-owned,
read-only working directory that holds the code (the image's /app). Faust's data directory goes to the
state directory's default (a temp dir for a user without a home), never the working directory."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamproc.settings import Settings
from tests.conftest import ROOT, Stack
from tests.integration.workers import WorkerProcess, wait_for

pytestmark = pytest.mark.integration

UID = 65534  # nobody


def _drop_privileges() -> list[str]:
    """The command prefix that runs a program as ``UID`` (skips where this machine cannot do that)."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("dropping privileges to another user needs root and setpriv (util-linux)")
    drop = [setpriv, f"--reuid={UID}", f"--regid={UID}", "--clear-groups"]
    probe = subprocess.run([*drop, "/bin/sh", "-c", "id -u"], capture_output=True, text=True)
    if probe.returncode != 0 or probe.stdout.strip() != str(UID):
        pytest.skip(f"setpriv cannot switch to uid {UID} here: {probe.stderr.strip()}")
    return drop


def _link_tree(src: Path, dst: Path, *skip: str) -> None:
    """``dst`` as hard links to ``src``'s files (copies across filesystems), without ``skip`` names."""

    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*skip), copy_function=link, symlinks=True)


def _interpreter(drop: list[str], base: Path) -> tuple[str, dict[str, str]]:
    """A Python ``UID`` can run with this test run's packages: (executable, extra environment).

    The test's own interpreter when ``UID`` can run it. Where it cannot (here the venv links to a pyenv
    build under /root, mode 700: the loader then even falls back to the system's libpython), a view of
    the base interpreter made of hard links under ``base`` (bin, libpython, the standard library; no
    copy of its bytes) and a venv whose ``lib`` is this venv's, so the same packages load."""
    check = "import sys, faust; print(sys.version, sys.base_prefix)"
    want = f"{sys.version} {sys.base_prefix}"
    probe = subprocess.run([*drop, sys.executable, "-c", check], capture_output=True, text=True, cwd="/")
    if probe.returncode == 0 and probe.stdout.strip() == want:
        return sys.executable, {}
    home, exe = Path(sys.base_prefix), Path(os.path.realpath(sys.executable))
    stdlib = f"python{sys.version_info.major}.{sys.version_info.minor}"
    python = base / "python"
    (python / "bin").mkdir(parents=True)
    os.link(exe, python / "bin" / exe.name)
    (python / "lib").mkdir()
    for lib in (home / "lib").glob("libpython*"):
        os.link(lib, python / "lib" / lib.name)
    _link_tree(home / "lib" / stdlib, python / "lib" / stdlib, "site-packages", "test", "idlelib", "tkinter")
    venv = base / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(python / "bin" / exe.name)
    (venv / "lib").symlink_to(Path(sys.prefix) / "lib")
    (venv / "pyvenv.cfg").write_text(f"home = {python / 'bin'}\ninclude-system-site-packages = false\n")
    return str(venv / "bin" / "python"), {"LD_LIBRARY_PATH": str(python / "lib")}


@pytest.fixture
def sandbox() -> Iterator[Path]:
    """A directory ``UID`` can enter, under the system temp dir (pytest's tmp_path is root's, mode 700)."""
    base = Path(tempfile.mkdtemp(prefix="streamproc-unprivileged-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _ready(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
            return dict(json.loads(r.read()))
    except (urllib.error.URLError, OSError):
        return None  # not listening yet, or 503 (not ready)


async def test_a_worker_starts_unprivileged_in_a_read_only_working_directory(
    settings: Settings, stack: Stack, sandbox: Path, tmp_path: Path, redis_client
):
    drop = _drop_privileges()
    python, python_env = _interpreter(drop, sandbox)
    # the image's layout: code and schemas in a root-owned working directory the worker cannot write
    app = sandbox / "app"
    shutil.copytree(ROOT / "streamproc", app / "streamproc", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "schemas", app / "schemas")
    app.chmod(0o555)
    temp = sandbox / "tmp"
    temp.mkdir(mode=0o1777)
    temp.chmod(0o1777)
    user = pwd.getpwuid(UID)
    imported = subprocess.run(
        [*drop, python, "-c", "import streamproc; print(streamproc.__file__)"],
        cwd=app,
        env={**os.environ, **python_env},
        capture_output=True,
        text=True,
    )
    assert imported.stdout.strip() == str(app / "streamproc" / "__init__.py"), imported

    worker = WorkerProcess(stack, settings.namespace, tmp_path, "unprivileged", **python_env)
    for var in ("STREAMPROC_STATE_DIR", "XDG_STATE_HOME"):  # the defaults, as in the image
        worker.env.pop(var, None)
    worker.env |= {"HOME": user.pw_dir, "USER": user.pw_name, "TMPDIR": str(temp)}
    worker.argv = [*drop, python, "-m", "streamproc", "worker"]
    worker.cwd = app
    before = sorted(p.relative_to(app) for p in app.rglob("*"))
    port = int(worker.env["STREAMPROC_WEB_PORT"])

    async def ready() -> dict | None:
        assert worker.alive, f"the worker exited:\n{worker.logs()[-3000:]}"
        doc = await asyncio.to_thread(_ready, port)
        return doc if doc and doc["ready"] else None

    worker.start()
    try:
        doc = await wait_for("the unprivileged worker to answer /ready", ready, timeout=90, every=0.2)
        assert doc["partitions"] == [0, 1, 2]
        datadir = temp / f"streamproc-{UID}" / f"{settings.app_id}-data"
        assert datadir.is_dir() and datadir.stat().st_uid == UID, sorted(temp.rglob("*"))
        assert sorted(p.relative_to(app) for p in app.rglob("*")) == before, "it wrote in the working dir"
    finally:
        worker.stop()
        print(worker.logs()[-6000:])
