"""Trading states on the real broker and Redis with two workers: `streamproc halt` stored once is
honoured by whichever worker owns the account (the halted instrument is left out of its order, the
drift document says why), audited once on the alerts topic, listed by `inspect status`, and ended by
`streamproc resume`."""

from __future__ import annotations

import time

import pytest

from streamproc.settings import Settings
from streamproc.sim.messages import produce, quote
from streamproc.wire.contract import Contract
from tests.integration.alerts import account_field, alerts_of
from tests.integration.oncall import cli
from tests.integration.runbook import Runbook
from tests.integration.scenario import for_account, setup_records
from tests.integration.workers import TopicReader, wait_for

pytestmark = pytest.mark.integration


def _applied_by(stack, namespace: str) -> int:
    out = cli(stack, namespace, "inspect", "status").stdout
    line = next((row for row in out.splitlines() if "HALTED    instrument BOND" in row), "")
    return 2 if "applied by 2 of 2 workers" in line else 0


async def _with_why(drift) -> dict | None:
    doc = await drift
    return doc if doc and "why" in doc else None


async def test_halt_and_resume_reach_every_worker(
    settings: Settings, workers, stack, redis_client, ns
) -> None:
    t = settings.topics
    contract = Contract(settings.schemas_dir)
    await produce(stack.bootstrap, setup_records(t, {"A": ("EQ1", 600, 800), "B": ("EQ2", 600, 800)}))
    async with TopicReader(stack, t.alerts) as alerts, TopicReader(stack, t.orders) as orders:
        workers("w1")
        workers("w2")
        for account in ("A", "B"):
            await wait_for(
                f"{account} evaluated",
                lambda a=account: account_field(redis_client, settings, a, "drift"),
                timeout=90,
            )
        asked = time.monotonic()
        done = cli(stack, ns.prefix, "halt", "--instrument", "BOND", "--reason", "corporate action")
        assert done.returncode == 0 and "instrument BOND: active -> halted" in done.stdout, (
            done.stdout + done.stderr
        )
        values = await alerts.wait("the halt audited", lambda v: alerts_of(v, "trading_state"))
        print(f"halt audited {time.monotonic() - asked:.2f} s after the command")
        (fired,) = alerts_of(values, "trading_state")
        contract.validate("alerts", fired)
        assert fired["state"] == "firing" and fired["details"]["reason"] == "corporate action"
        # every worker says it applies the halt (each reads the states once a second)
        await wait_for(
            "both workers applying the halt", lambda: _applied_by(stack, ns.prefix) == 2, every=0.5
        )
        print(f"halt applied by both workers {time.monotonic() - asked:.2f} s after the command")

        # both accounts rally out of band; whichever worker owns each, BOND is left out
        await produce(
            stack.bootstrap, [(t.quotes, quote("EQ1", 132.0, 2)), (t.quotes, quote("EQ2", 132.0, 2))]
        )
        values = await orders.wait("orders for A and B", lambda v: {o["account"] for o in v} >= {"A", "B"})
        for account, eq in (("A", "EQ1"), ("B", "EQ2")):
            (order,) = for_account(values, account)
            assert [(leg["instrument"], leg["side"]) for leg in order["legs"]] == [(eq, "sell")]
            drift = await wait_for(
                f"{account}'s drift written",
                lambda a=account: _with_why(account_field(redis_client, settings, a, "drift")),
            )
            assert drift["why"] == "partly untradable: halted BOND"
        # the other scopes a runbook may have to resume: a tier, an account, everything
        for scope in (["--tier", "bond"], ["--account", "B"], ["--all"]):
            done = cli(stack, ns.prefix, "halt", *scope, "--reason", "drill")
            assert done.returncode == 0, done.stdout + done.stderr
        async with Runbook("trading_state", stack, ns.prefix, ID="BOND", TIER="bond", ACCOUNT="A") as rb:
            status = (await rb.run("streamproc inspect status")).stdout
            assert "HALTED    instrument BOND" in status and "corporate action" in status, status
            assert "HALTED    tier bond" in status and "HALTED    account B" in status
            shown = (await rb.run("streamproc inspect instrument")).stdout
            assert "trading state  halted (itself" in shown and "halted (everything" in shown, shown
            account = (await rb.run("streamproc inspect account")).stdout
            assert "why            partly untradable: halted BOND" in account, account

            done = await rb.run("streamproc resume --instrument")
            assert "instrument BOND: halted -> active" in done.stdout
            assert "tier bond: halted -> active" in (await rb.run("streamproc resume --tier")).stdout
            done = await rb.run("streamproc resume --account", ACCOUNT="B")
            assert "account B: halted -> active" in done.stdout
            assert "halted -> active" in (await rb.run("streamproc resume --all")).stdout
        values = await alerts.wait("the resumes audited", lambda v: len(alerts_of(v, "trading_state")) == 8)
        assert (
            sorted(a["state"] for a in alerts_of(values, "trading_state"))
            == ["firing"] * 4 + ["resolved"] * 4
        )
        assert "trading states: all active" in cli(stack, ns.prefix, "inspect", "status").stdout
        assert "trading state  active" in cli(stack, ns.prefix, "inspect", "instrument", "BOND").stdout
    assert fired["subject"] == {"instrument": "BOND"}
