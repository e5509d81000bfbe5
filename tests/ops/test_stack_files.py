"""Static checks of the deployment files: compose validates, versions agree with the Maven pin."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.conftest import ROOT


def pinned_kafka_version() -> str:
    m = re.search(r"<kafka.version>([^<]+)</kafka.version>", (ROOT / "ops/pom.xml").read_text())
    assert m
    return m.group(1)


def test_compose_kafka_image_matches_the_maven_pin() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    images = re.findall(r"image:\s*apache/kafka:(\S+)", compose)
    assert images == [pinned_kafka_version()]


@pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose not installed (as root, make setup installs it: apt-get install docker-compose)",
)
def test_compose_file_is_valid() -> None:
    proc = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci/run").read_text()
    assert "make test" in readme and "make demo" in readme
    assert re.search(r"^exec make test$", ci, re.M)
