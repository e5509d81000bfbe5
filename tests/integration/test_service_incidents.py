"""The incidents Prometheus watches (ops/prometheus/rules.yml), provoked on real workers: a worker killed,
a positions backlog, a worker with no partitions, Redis refusing the workers, orders late against
their quotes, and orders throttled. Each test shows the metric its rule reads crossing the rule's
threshold on /metrics, then follows the alert's runbook and checks its commands show the evidence."""

from __future__ import annotations

import re
import signal
import uuid
from typing import Any

import pytest

from streamproc.settings import Settings
from streamproc.sim.messages import now_ms, position, produce, quote
from tests.integration.alerts import account_field, status_is
from tests.integration.conftest import namespace_settings
from tests.integration.oncall import cli
from tests.integration.runbook import Runbook
from tests.integration.scenario import for_account, setup_records
from tests.integration.web import sample, scrape
from tests.integration.workers import TopicReader, WorkerProcess, wait_for

pytestmark = pytest.mark.integration


async def _account_a(settings: Settings, workers, stack, redis_client, **env: str) -> WorkerProcess:
    """Account A (60/40 in EQ1 and BOND, quoted once) and a worker that has evaluated it."""
    await produce(stack.bootstrap, setup_records(settings.topics, {"A": ("EQ1", 600, 800)}))
    worker = workers(STREAMPROC_QUOTE_MAX_AGE_S="600", **env)
    await wait_for("A evaluated", lambda: account_field(redis_client, settings, "A", "drift"), timeout=60)
    return worker


def _reporting(stack, namespace: str) -> int:
    found = re.search(r"workers \((\d+) reporting", cli(stack, namespace, "inspect", "status").stdout)
    return int(found.group(1)) if found else 0


def _owns(stack, namespace: str, partitions: str) -> bool:
    return f"partitions {partitions}" in cli(stack, namespace, "inspect", "status").stdout


async def test_worker_down_a_killed_worker_leaves_and_the_other_takes_its_partitions(
    settings: Settings, workers, stack, redis_client
):
    await produce(stack.bootstrap, setup_records(settings.topics, {"A": ("EQ1", 600, 800)}))
    w1, w2 = workers("w1"), workers("w2")
    await wait_for("both workers ready", lambda: w1.ready() and w2.ready(), timeout=90, every=0.5)
    await wait_for("both reporting", lambda: _reporting(stack, settings.namespace) == 2, timeout=60, every=1)
    w2.kill(signal.SIGKILL)  # StreamprocWorkerDown: its scrape target stops answering (up == 0)
    assert w2.get("/metrics") == (0, b"")
    await wait_for(
        "w1 owning every partition",
        lambda: _owns(stack, settings.namespace, "[0, 1, 2]"),
        timeout=60,
        every=1.0,
    )
    async with Runbook("worker_down", stack, settings.namespace, HOST="127.0.0.1") as rb:
        status = (await rb.run("streamproc inspect status")).stdout
        assert "partitions [0, 1, 2]" in status, status  # the survivor took over
        reports = re.findall(r"reported (\d+\.\d) s ago", status)
        assert any(float(age) > 3 for age in reports), status  # the dead one stopped reporting
        down = await rb.run("curl -s http://<HOST>:<PORT>/health", expect=7, PORT=str(w2.port))
        assert down.stdout == ""  # no answer at all: check the process
        ready = await rb.run("curl -s http://<HOST>:<PORT>/ready", PORT=str(w1.port))
        assert "ready" in ready.stdout, ready


async def test_consumer_lag_a_positions_backlog_shows_per_worker_and_topic(
    settings: Settings, workers, stack, redis_client
):
    t = settings.topics
    worker = await _account_a(settings, workers, stack, redis_client)
    worker.pause()  # a worker that falls behind: records arrive faster than it takes them
    backlog = [(t.positions, position(f"L{i % 2000}", "EQ1", 1.0 + i, 1 + i // 2000)) for i in range(40_000)]
    await produce(stack.bootstrap, backlog)
    worker.resume()

    async def lagging() -> float:
        return sample(await scrape(worker.port), "streamproc_consumer_lag", topic="positions")

    lag = await wait_for("the lag on /metrics", lagging, timeout=30, every=0.2)
    assert lag > 1000  # StreamprocConsumerLagGrowing's threshold
    async with Runbook("consumer_lag", stack, settings.namespace) as rb:
        status = (await rb.run("streamproc inspect status")).stdout
        behind = re.search(r"lag .*positions (\d+)", status)
        assert behind and int(behind.group(1)) > 0, status  # which worker, which topic
        topics = (await rb.run("streamproc inspect topics")).stdout
        assert re.search(rf"{t.positions}\s+4\d{{4}}\s", topics), topics  # what came in
    await wait_for("the backlog drained", lambda: _caught_up(stack, settings.namespace), timeout=120, every=1)


def _caught_up(stack, namespace: str) -> bool:
    return bool(re.search(r"lag .*positions 0\b", cli(stack, namespace, "inspect", "status").stdout))


async def test_pipeline_stalled_a_worker_with_no_partitions_reads_quotes_and_evaluates_nothing(
    stack, ns, admin, topics, workers, redis_client
):
    # one partition, two workers: one evaluates every account, the other reads quotes only
    settings = await namespace_settings(stack, ns, admin, partitions=1)
    await produce(stack.bootstrap, setup_records(settings.topics, {"A": ("EQ1", 600, 800)}))
    w1, w2 = workers("w1", STREAMPROC_PARTITIONS="1"), workers("w2", STREAMPROC_PARTITIONS="1")
    await wait_for("both workers ready", lambda: w1.ready() and w2.ready(), timeout=90, every=0.5)
    await produce(
        stack.bootstrap, [(settings.topics.quotes, quote("EQ1", 100.0 + i, 2 + i)) for i in range(20)]
    )

    async def idle() -> Any:
        for w in (w1, w2):
            s = await scrape(w.port)
            quotes = sample(s, "streamproc_messages_consumed_total", topic="quotes")
            if quotes >= 20 and sample(s, "streamproc_evaluations_total") == 0:
                return w  # StreamprocPipelineStalled: quotes consumed, nothing evaluated
        return None

    stalled = await wait_for("the worker without partitions", idle, timeout=30, every=0.5)
    await wait_for("both reporting", lambda: _owns(stack, ns.prefix, "[]"), timeout=30, every=1.0)
    async with Runbook("pipeline_stalled", stack, ns.prefix, HOST="127.0.0.1", PORT=str(stalled.port)) as rb:
        health = (await rb.run("curl -s http://<HOST>:<PORT>/health")).stdout
        assert health.startswith('{"status":"ok","problems":[]'), health  # no ended task, no stall
        ready = (await rb.run("curl -s http://<HOST>:<PORT>/ready")).stdout
        assert '"partitions":[]' in ready, ready  # ready, and owns nothing: evaluates nothing
        status = (await rb.run("streamproc inspect status")).stdout
        assert "partitions []  accounts 0" in status and "partitions [0]  accounts 1" in status, status


async def test_redis_errors_a_worker_refused_by_redis_retries_and_resumes(
    settings: Settings, workers, stack, redis_client
):
    # the worker's own Redis user; turning it off is Redis refusing this worker, and only it
    user, password = f"w-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    await redis_client.execute_command("ACL", "SETUSER", user, "on", f">{password}", "~*", "&*", "+@all")
    url = stack.redis_url.replace("redis://", f"redis://{user}:{password}@")
    try:
        worker = await _account_a(settings, workers, stack, redis_client, REDIS_URL=url)
        await wait_for("the worker reporting", lambda: _owns(stack, settings.namespace, "[0, 1, 2]"), every=1)
        await redis_client.execute_command("ACL", "SETUSER", user, "off")
        await redis_client.execute_command("CLIENT", "KILL", "USER", user)

        async def errors() -> float:
            s = await scrape(worker.port)
            return sum(v for (name, _), v in s.items() if name == "streamproc_redis_errors_total")

        assert await wait_for("redis errors on /metrics", errors, timeout=30, every=0.5) > 0
        await wait_for("the worker's report going stale", lambda: _stale(stack, settings.namespace), every=1)
        async with Runbook("redis_errors", stack, settings.namespace) as rb:
            status = (await rb.run("streamproc inspect status")).stdout
            assert re.search(r"reported ([3-9]|\d\d+)\.\d s ago", status), status  # it cannot write
            assert "PONG" in (await rb.run("redis-cli")).stdout  # Redis is up: the errors are the worker's
        logged = worker.log_events("redis unavailable, retrying")
        assert (logged and "WRONGPASS" in logged[-1]["error"]) or "disabled" in logged[-1]["error"], logged[
            -1:
        ]
        await redis_client.execute_command("ACL", "SETUSER", user, "on")  # restored: it resumes by itself
        await wait_for("reports again", lambda: not _stale(stack, settings.namespace), timeout=30, every=1)
        assert worker.alive
    finally:
        await redis_client.execute_command("ACL", "DELUSER", user)


def _stale(stack, namespace: str) -> bool:
    found = re.findall(r"reported (\d+\.\d) s ago", cli(stack, namespace, "inspect", "status").stdout)
    return bool(found) and all(float(age) >= 3 for age in found)


async def test_quote_to_order_latency_a_feed_stamped_late_shows_in_the_quotes_age(
    settings: Settings, workers, stack, redis_client
):
    t = settings.topics
    worker = await _account_a(settings, workers, stack, redis_client)
    async with TopicReader(stack, t.orders) as orders:
        # the feed's clock runs 3 s behind: its quote says 3 s ago when it is sent
        await produce(stack.bootstrap, [(t.quotes, quote("EQ1", 132.34, 2, ts=now_ms() - 3000))])
        await orders.wait("A's order", lambda v: for_account(v, "A"))
    s = await scrape(worker.port)
    slow = sample(s, "streamproc_quote_to_order_seconds_count") - sample(
        s, "streamproc_quote_to_order_seconds_bucket", le="1.0"
    )
    assert slow >= 1  # over the SLO's 1 s: StreamprocQuoteToOrderLatencySLO's p99
    async with Runbook("quote_to_order_latency", stack, settings.namespace, ID="EQ1") as rb:
        status = (await rb.run("streamproc inspect status")).stdout
        assert "lag " in status and "positions 0" in status, status  # nothing waiting: not the workers
        topics = (await rb.run("streamproc inspect topics")).stdout
        newest = re.search(rf"{t.quotes}\s+\d+\s+(\d+\.\d) s ago", topics)
        shown = (await rb.run("streamproc inspect instrument")).stdout
        quoted = re.search(r"last quote .*, (\d+\.\d) s ago", shown)
        assert newest and quoted, topics + shown
        assert float(quoted.group(1)) - float(newest.group(1)) > 2.5  # the producer's clock is behind


async def test_orders_throttled_a_wave_beyond_the_limit_waits_in_a_queue(
    settings: Settings, workers, stack, redis_client
):
    t = settings.topics
    accounts = {f"T{i}": ("EQ1", 600, 800) for i in range(8)}
    await produce(stack.bootstrap, setup_records(t, accounts))
    worker = workers(STREAMPROC_MAX_ORDERS_PER_S="0.2", STREAMPROC_QUOTE_MAX_AGE_S="600")
    for a in accounts:
        await wait_for(
            f"{a} evaluated", lambda a=a: account_field(redis_client, settings, a, "drift"), timeout=60
        )
    await produce(stack.bootstrap, [(t.quotes, quote("EQ1", 132.34, 2))])

    async def throttled() -> float:
        return sample(await scrape(worker.port), "streamproc_accounts", state="throttled")

    assert await wait_for("throttled accounts on /metrics", throttled, timeout=30, every=0.5) > 0
    waiting = await wait_for(
        "a throttled account",
        lambda: _first([a for a in accounts], lambda a: status_is(redis_client, settings, a, "throttled")),
    )
    async with Runbook("orders_throttled", stack, settings.namespace, ACCOUNT=waiting) as rb:
        status = (await rb.run("streamproc inspect status")).stdout
        assert re.search(r"throttled [1-8]\b", status), status
        shown = (await rb.run("streamproc inspect account")).stdout
        assert "drift status   throttled" in shown, shown


async def _first(items: list[str], check) -> str | None:
    for item in items:
        if await check(item):
            return item
    return None
