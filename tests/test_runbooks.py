"""Every alert type has a runbook in the on-call shape, and every `streamproc` command a runbook names
exists with the options it uses."""

from __future__ import annotations

import re
import shlex

import pytest

from streamproc.cli import build_parser
from streamproc.core.alerts import ALERT_TYPES
from tests.conftest import ROOT

RUNBOOKS = ROOT / "runbooks"
SECTIONS = ("Meaning", "Impact", "Diagnosis", "Mitigation", "Escalation", "Threshold")


def commands(text: str) -> list[str]:
    """`streamproc ...` lines inside fenced code blocks."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    return [
        line.strip()
        for block in blocks
        for line in block.splitlines()
        if line.strip().startswith("streamproc ")
    ]


def check_command(line: str) -> None:
    """Parse a runbook command line as the CLI would (placeholders like <ID> stand for a value)."""
    argv = [re.sub(r"^<[A-Z_]+>$", "X", arg) for arg in shlex.split(line, comments=True)[1:]]
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        raise AssertionError(f"runbook command does not exist or has a bad option: {line!r}") from exc


@pytest.mark.parametrize("type_", sorted(ALERT_TYPES))
def test_every_alert_type_has_a_runbook_in_the_on_call_shape(type_: str) -> None:
    path = ROOT / ALERT_TYPES[type_].runbook
    assert path.is_file(), f"{path} is missing: every alert type needs a runbook"
    text = path.read_text()
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings == list(SECTIONS), f"{path.name} sections are {headings}, want {list(SECTIONS)}"
    assert commands(text), f"{path.name} names no copy-pastable streamproc command"
    assert f"`{type_}`" in (RUNBOOKS / "README.md").read_text()


@pytest.mark.parametrize("path", sorted(RUNBOOKS.glob("*.md")), ids=lambda p: p.name)
def test_runbook_commands_exist(path) -> None:
    for line in commands(path.read_text()):
        check_command(line)


def test_the_command_check_catches_what_does_not_exist() -> None:
    check_command("streamproc inspect account <ACCOUNT>")
    for bad in ("streamproc inspect portfolio X", "streamproc storm release --force", "streamproc restart"):
        with pytest.raises(AssertionError, match="does not exist"):
            check_command(bad)


def test_every_runbook_is_followed_during_its_incident_by_an_integration_test() -> None:
    # tests/integration/runbook.py runs every command of the runbook and fails if the test leaves one out
    followed = {
        name
        for path in (ROOT / "tests" / "integration").glob("test_*.py")
        for name in re.findall(r'Runbook\(\s*"([a-z_]+)"', path.read_text())
    }
    runbooks = {p.stem for p in RUNBOOKS.glob("*.md") if p.stem != "README"}
    assert followed <= runbooks, f"tests follow runbooks that do not exist: {sorted(followed - runbooks)}"
    missing = sorted(runbooks - followed)
    assert not missing, f"no integration test provokes the incident of and follows: {missing}"
