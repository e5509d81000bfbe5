"""Alerts link their runbook where it is served: with STREAMPROC_RUNBOOK_BASE_URL set, each alert carries
``runbook_url`` (base + /<type>.md) beside the repository path ``runbook``; without it, no link; a base
that is not an http(s) URL is refused at start-up."""

from __future__ import annotations

import pytest

from streamproc.settings import Settings, SettingsError
from streamproc.testkit import MemorySource, worker
from tests.app.kit import CONTRACT, open_account, own, settings
from tests.app.test_clock_skew import DAY_MS, send, sent


async def _skew_alert(**env: str) -> dict:
    w = worker(settings(**env), CONTRACT)
    await own(w, 0)
    source = MemorySource()
    send(source, w, "EQ", 100.0, 1)
    send(source, w, "BOND", 50.0, 1)
    await w.parts.feed.start(source)
    await w.parts.feed.poll(source)
    await open_account(w, "A")
    send(source, w, "BOND", 55.0, 2, ahead_ms=DAY_MS)
    await w.parts.feed.poll(source)
    await w.parts.evaluator.run_once()
    (alert,) = [a for a in sent(w, w.parts.settings.topics.alerts) if a["type"] == "clock_skew"]
    CONTRACT.validate("alerts", alert)
    return alert


async def test_an_alert_links_its_runbook_under_the_configured_base() -> None:
    alert = await _skew_alert(STREAMPROC_RUNBOOK_BASE_URL="https://wiki.example.com/ops/streamproc/")
    assert alert["runbook"] == "runbooks/clock_skew.md"
    assert alert["runbook_url"] == "https://wiki.example.com/ops/streamproc/clock_skew.md"


async def test_without_a_base_an_alert_names_the_repository_path_only() -> None:
    alert = await _skew_alert()
    assert alert["runbook"] == "runbooks/clock_skew.md" and "runbook_url" not in alert


def test_a_base_that_is_not_a_web_url_is_refused_at_start_up() -> None:
    with pytest.raises(SettingsError, match=r"STREAMPROC_RUNBOOK_BASE_URL='runbooks/'.*http:// or https://"):
        Settings.from_env({"STREAMPROC_RUNBOOK_BASE_URL": "runbooks/"})
