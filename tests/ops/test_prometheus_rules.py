"""The service's own alerting rules: valid, unit-tested with promtool, each with a severity, a `for:`,
a summary and a runbook in the on-call shape, and only over metrics the worker exports."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import ROOT
from tests.ops.metric_names import unexported
from tests.test_runbooks import SECTIONS

RULES = ROOT / "ops" / "prometheus"


def _rules() -> list[dict]:
    doc = yaml.safe_load((RULES / "rules.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed and could not be (make tools; Debian package prometheus)")
    return subprocess.run([promtool, *args], cwd=RULES, capture_output=True, text=True, timeout=120)


def test_promtool_checks_the_rules() -> None:
    done = _promtool("check", "rules", "rules.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_pass() -> None:
    done = _promtool("test", "rules", "rules.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    tested = set(re.findall(r"alertname: (\w+)", (RULES / "rules.test.yml").read_text()))
    assert tested == {r["alert"] for r in _rules()}, "every rule needs a promtool test"


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: r["alert"])
def test_each_rule_pages_with_a_runbook(rule: dict) -> None:
    assert rule["alert"].startswith("Streamproc")
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert re.fullmatch(r"\d+[smh]", rule["for"])
    assert rule["annotations"]["summary"]
    # built from the base Prometheus is told (external label runbook_base_url), not a relative path
    url = rule["annotations"]["runbook_url"]
    found = re.fullmatch(r"\{\{ \$externalLabels\.runbook_base_url \}\}/([a-z_]+\.md)", url)
    assert found, f"{rule['alert']}: runbook_url {url!r} is not the base URL + /<runbook>.md"
    runbook = ROOT / "runbooks" / found.group(1)
    assert runbook.is_file(), f"{rule['alert']}: {runbook} is missing"
    headings = re.findall(r"^## (.+)$", runbook.read_text(), flags=re.M)
    assert headings == list(SECTIONS)


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: r["alert"])
def test_rules_use_only_exported_metrics(rule: dict) -> None:
    assert unexported(rule["expr"]) == [], f"{rule['alert']} uses metrics the worker does not export"
