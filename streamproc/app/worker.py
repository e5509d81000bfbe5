"""The composition root and the only Faust room: builds one worker's components over Redis and Kafka and
drives them with the account agent, the rebalance hooks, the worker's tasks and its web pages."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import faust
import mode
import structlog
from aiokafka.admin import AIOKafkaAdminClient
from faust.sensors.prometheus import setup_prometheus_sensors

from streamproc import kafka
from streamproc.app.deadletters import Record
from streamproc.app.kafka_io import KafkaOrderLog, KafkaPublisher
from streamproc.app.orders import AfterPublish
from streamproc.app.runtime import Components, build
from streamproc.app.stop_guard import StopGuard
from streamproc.app.topics import ensure_topics
from streamproc.clients import faust_credentials, kafka_args, redis_client
from streamproc.logs import configure as configure_logging
from streamproc.settings import Settings
from streamproc.state.store import Store
from streamproc.wire.contract import Contract

log = structlog.get_logger(__name__)
# How long the account agent waits to fill a batch before processing what it has.
_TAKE_WITHIN_S = 0.02
_GC_THRESHOLD = 200_000


async def prepare(settings: Settings) -> dict[str, int]:
    """Check the broker and Redis answer and the topics are usable (creating missing ones)."""
    admin = AIOKafkaAdminClient(**kafka_args(settings), request_timeout_ms=10_000)
    try:
        await admin.start()
    except Exception as exc:
        raise SystemExit(
            f"streamproc worker: Kafka is not reachable at KAFKA_BOOTSTRAP_SERVERS="
            f"{settings.kafka_bootstrap_servers} ({exc}); start it (ops/local/stack up) or fix the variable"
        ) from None
    try:
        partitions = await ensure_topics(settings, admin)
    finally:
        await admin.close()
    client = redis_client(settings, socket_connect_timeout=5)
    try:
        await client.ping()
    except Exception as exc:
        raise SystemExit(
            f"streamproc worker: Redis is not reachable at REDIS_URL "
            f"({settings.redacted()['redis_url']}): {exc}"
        ) from None
    finally:
        await client.aclose()
    return partitions


def create_app(
    settings: Settings, partitions: dict[str, int], *, after_publish: AfterPublish | None = None
) -> tuple[faust.App, Components]:
    """The Faust app and the components it drives, over Redis and Kafka (``after_publish``: a test's
    fault hook between publishing orders and recording them)."""
    store = Store(redis_client(settings, health_check_interval=10), settings.redis_prefix)
    publisher = KafkaPublisher(settings)
    parts = build(
        settings,
        Contract(settings.schemas_dir),
        partitions,
        store=store,
        publisher=publisher,
        order_log=KafkaOrderLog(settings),
        after_publish=after_publish,
    )
    store.observe = parts.metrics.observe_redis
    store.failed = parts.counters.redis_errors.inc
    topics = settings.topics
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{h}" for h in settings.kafka_bootstrap_servers.split(",")],
        broker_credentials=faust_credentials(settings),
        store="memory://",
        datadir=settings.state_dir / f"{settings.app_id}-data",  # not the working directory
        autodiscover=False,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        producer_acks=-1,
        web_enabled=True,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_host=settings.web_host,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        broker_commit_every=1000,
        broker_session_timeout=settings.session_timeout_s,
        # faust refuses a session timeout above the request timeout (90 s by default)
        broker_request_timeout=max(90.0, settings.session_timeout_s + 30.0),
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        stream_buffer_maxsize=max(4096, settings.batch_max * 2),
    )
    account_topics = app.topic(
        topics.positions,
        topics.targets,
        topics.executions,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    # concurrency=1 on purpose: with more, Faust commits offsets past in-flight events (faust-streaming #606).
    @app.agent(account_topics, concurrency=1)
    async def accounts(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_max, within=_TAKE_WITHIN_S):
            records = [
                Record(m.topic, m.partition, m.offset, m.key, m.value, int((m.timestamp or 0) * 1000))
                for m in (e.message for e in events)
            ]
            await parts.intake.on_records(records)

    def account_partitions(tps: Any) -> set[int]:
        return {tp.partition for tp in tps if tp.topic == topics.positions}

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        (revoked,) = args  # faust sends the revoked set positionally
        await parts.ownership.on_revoked(account_partitions(revoked))

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        (assigned,) = args  # faust sends the assigned set positionally
        await publisher.start()
        await parts.ownership.on_assigned(account_partitions(assigned))

    async def run_feed() -> None:
        consumer = kafka.consumer(settings, max_poll_records=settings.batch_max, fetch_max_wait_ms=20)
        await consumer.start()
        try:
            await parts.feed.run(consumer)
        finally:
            await consumer.stop()

    async def run_watch() -> None:
        await parts.feed.ready.wait()
        consumer = kafka.consumer(settings)
        await consumer.start()
        try:
            await parts.watcher.run(consumer, partitions)
        finally:
            await consumer.stop()

    @app.service
    class WorkerService(mode.Service):
        """Runs the price feed, evaluator, watch and heartbeat with the app; on stop, ends them before
        closing the clients (a publish in flight must not meet a closed producer)."""

        jobs: list[asyncio.Task[None]]
        crashing: asyncio.Future[None]

        async def on_start(self) -> None:
            await publisher.start()

        async def on_started(self) -> None:
            self.jobs = [
                asyncio.create_task(job, name=name)
                for name, job in (
                    ("feed", run_feed()),
                    (
                        "evaluator",
                        parts.evaluator.run(parts.cadence, lambda: parts.feed.lag, parts.feed.ready),
                    ),
                    ("watch", run_watch()),
                    ("heartbeat", parts.health.run_heartbeat()),
                )
            ]
            parts.health.jobs = self.jobs
            for job in self.jobs:
                job.add_done_callback(self._crash_on_error)

        def _crash_on_error(self, job: asyncio.Task[None]) -> None:
            if not job.cancelled() and job.exception() is not None:
                log.error("worker task failed: stopping the worker", exc_info=job.exception())
                self.crashing = asyncio.ensure_future(self.crash(job.exception()))  # type: ignore[arg-type]

        async def on_stop(self) -> None:
            for job in getattr(self, "jobs", []):
                job.cancel()
            await asyncio.gather(*getattr(self, "jobs", []), return_exceptions=True)
            parts.ownership.stop()
            await publisher.stop()
            await store.redis.aclose()

    # framework metrics (faust's sensor) and ours share one registry, served at /metrics
    setup_prometheus_sensors(app, "/metrics", parts.metrics.registry, name_prefix="streamproc_faust")

    @app.page("/health")
    async def health(self: Any, request: Any) -> Any:
        problems = parts.health.problems()
        doc = {
            "status": "failing" if problems else "ok",
            "problems": problems,
            "loop_lag_s": parts.health.loop_lag_s,
        }
        return self.json(doc, status=503 if problems else 200)

    @app.page("/ready")
    async def ready(self: Any, request: Any) -> Any:
        reasons = await parts.health.not_ready()
        doc = {"ready": not reasons, "reasons": reasons, "partitions": sorted(parts.ownership.owned)}
        return self.json(doc, status=503 if reasons else 200)

    return app, parts


class _Worker(faust.Worker):
    """faust's worker with its stop bounded by a StopGuard, armed when the stop signal arrives."""

    guard: StopGuard | None = None

    def _schedule_shutdown(self, signal: Any) -> None:
        if self.guard is not None:
            self.guard.arm()
        super()._schedule_shutdown(signal)


def run(settings: Settings, *, after_publish: AfterPublish | None = None) -> int:
    """`streamproc worker`: run one worker until SIGINT/SIGTERM."""
    configure_logging(settings.log_level, settings.log_format)
    log.info("starting worker", **settings.redacted())
    limits = settings.limits
    log.info(
        "limits",
        version=limits.version,
        source=limits.source,
        tiers=list(limits.tiers),
        tier_limits=sorted(limits.tier),
        instrument_limits=len(limits.instrument),
    )
    partitions = asyncio.run(prepare(settings))
    settings.state_dir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level of datadir
    app, _parts = create_app(settings, partitions, after_publish=after_publish)
    # The feed allocates a dict per record: at the default threshold (700) the cyclic collector runs every
    # third of a batch and its older generations walk the whole book. Nothing on the hot paths builds
    # cycles, so collect far less often; loaded state is also frozen out of the collector (Ownership.load).
    gc.set_threshold(_GC_THRESHOLD, 20, 50)
    # override_logging=False: keep our handler (mode would replace the root handlers with its own)
    worker = _Worker(app, loglevel=settings.log_level.upper(), quiet=True, override_logging=False)
    worker.guard = StopGuard(worker.loop, settings.stop_timeout_s)
    worker.execute_from_commandline()
    return 0
