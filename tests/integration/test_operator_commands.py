"""Operator commands on the real stack: `inspect accounts --state` lists the accounts in a state with
since when and why; `namespace list` shows a namespace's topics and live workers; `namespace rm`
refuses while a worker of it is alive and removes its topics and keys when forced or when none is."""

from __future__ import annotations

import time

import orjson
import pytest

from streamproc.settings import Settings
from streamproc.state.keys import Keys
from tests.integration.oncall import cli

pytestmark = pytest.mark.integration


async def test_inspect_accounts_by_state(settings: Settings, stack, redis_client, ns) -> None:
    keys = Keys(settings.redis_prefix)
    now = int(time.time() * 1000)
    docs = {
        "H1": {"status": "held", "why": "held: breach_storm (streamproc storm release)", "evaluated_at": now},
        "H2": {"status": "held", "why": "held: breach_storm (streamproc storm release)", "evaluated_at": now},
        "U1": {
            "status": "untradable",
            "why": "spread BOND 85 bps > 40",
            "evaluated_at": now,
            "status_since": now,
        },
        "OK": {"status": "ok", "evaluated_at": now},
    }
    for account, doc in docs.items():
        await redis_client.hset(keys.account(account), "drift", orjson.dumps(doc))
    await redis_client.hset(keys.account("Q1"), mapping={"gap": b"{}", "drift": orjson.dumps(docs["OK"])})
    held = cli(stack, ns.prefix, "inspect", "accounts", "--state", "held").stdout
    assert "H1" in held and "H2" in held and "U1" not in held and held.strip().endswith("2 accounts held")
    assert "breach_storm" in held and "UTC" not in held and "Z, " in held  # ISO time and "N s ago"
    one = cli(stack, ns.prefix, "inspect", "accounts", "--state", "held", "--limit", "1").stdout
    assert "2 accounts held (the first 1 by id shown; --limit N for more)" in one and "H1" in one
    untradable = cli(stack, ns.prefix, "inspect", "accounts", "--state", "untradable").stdout
    assert "spread BOND 85 bps > 40" in untradable and "1 accounts untradable" in untradable
    await redis_client.hset(keys.account("Q2"), mapping={"gap": b"", "drift": orjson.dumps(docs["OK"])})
    quarantined = cli(stack, ns.prefix, "inspect", "accounts", "--state", "quarantined").stdout
    assert "Q1" in quarantined and "Q2" not in quarantined  # Q2's gap was filled (stored as b"")


async def test_namespace_list_and_rm(settings: Settings, stack, redis_client, ns) -> None:
    keys = Keys(settings.redis_prefix)
    await redis_client.hset(keys.account("A"), "cash", 1)
    listed = cli(stack, ns.prefix, "namespace", "list").stdout
    (line,) = [row for row in listed.splitlines() if row.startswith(ns.prefix + " ")]
    assert line.split()[1:] == ["8", "0"]  # its 8 topics (the settings fixture created them), no worker
    summary = {"worker": "w", "ts": int(time.time() * 1000)}
    await redis_client.hset(keys.workers, "token", orjson.dumps(summary))
    refused = cli(stack, ns.prefix, "namespace", "rm", ns.prefix)
    assert refused.returncode == 1 and "1 live workers" in refused.stdout
    assert await redis_client.exists(keys.account("A"))
    done = cli(stack, ns.prefix, "namespace", "rm", ns.prefix, "--force")
    assert done.returncode == 0 and f"removed namespace {ns.prefix}: 8 topics" in done.stdout, (
        done.stdout + done.stderr
    )
    assert not await redis_client.exists(keys.account("A"))
    assert not [
        r
        for r in cli(stack, ns.prefix, "namespace", "list").stdout.splitlines()
        if r.startswith(ns.prefix + " ")
    ]


async def test_inspect_status_in_a_namespace_without_workers_says_so(stack, ns) -> None:
    done = cli(stack, f"{ns.prefix}-typo", "inspect", "status")
    assert done.returncode == 1
    assert "NO WORKER is reporting in this namespace and none ever did" in done.stdout
    assert "is STREAMPROC_NAMESPACE right" in done.stdout
