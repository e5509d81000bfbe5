"""Prometheus metrics of one worker. Counters are read from the pipeline's plain ``stats`` at scrape time
(nothing per event on the hot path); latencies are histograms observed once per pass or Redis call.
Names follow Prometheus conventions: one ``streamproc_`` prefix, base units, ``_total`` counters, and no
account or instrument ids as labels."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# stats key -> (topic, outcome) of streamproc_messages_total
_OUTCOMES = {
    "quotes.seen": ("quotes", "checked"),
    "quotes.duplicates": ("quotes", "duplicate"),
    "positions.applied": ("positions", "applied"),
    "positions.replayed": ("positions", "replayed"),
    "positions.gap_filled": ("positions", "gap_filled"),
    "targets.applied": ("targets", "applied"),
    "targets.replayed": ("targets", "replayed"),
}


class Metrics:
    """The worker's registry: its own collector, latency histograms, and faust's sensor (added by the
    worker). ``snapshot`` is called at scrape time and returns the pipeline's counters and gauges."""

    def __init__(self, snapshot: Callable[[], Mapping[str, Any]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_PipelineCollector(snapshot))
        self.evaluation = Histogram(
            "streamproc_evaluation_duration_seconds",
            "Wall time of one evaluation pass (staleness, vectorized evaluation, orders, statuses).",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.quote_to_order = Histogram(
            "streamproc_quote_to_order_seconds",
            "From the newest input an order was computed from (quote ts, or position/targets ts) to its "
            "publication.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.redis = Histogram(
            "streamproc_redis_operation_duration_seconds",
            "Duration of one Redis operation (a pipelined round trip), including retries.",
            ["op"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe_redis(self, op: str, seconds: float) -> None:
        """Hook for the store: one operation took ``seconds``."""
        self.redis.labels(op=op).observe(seconds)


class _PipelineCollector(Collector):
    """Turns the pipeline's counters and gauges into metric families at scrape time."""

    def __init__(self, snapshot: Callable[[], Mapping[str, Any]]) -> None:
        self.snapshot = snapshot

    def describe(self) -> list[Any]:
        return []  # families vary with what happened: describe at scrape time only

    def collect(self) -> Iterator[Any]:
        snap = self.snapshot()
        stats: Mapping[str, int] = snap["stats"]
        consumed = CounterMetricFamily(
            "streamproc_messages_consumed", "Input records consumed, by topic.", labels=["topic"]
        )
        outcome = CounterMetricFamily(
            "streamproc_messages",
            "Decoded input records by topic and what was done with them.",
            labels=["topic", "outcome"],
        )
        dead = CounterMetricFamily(
            "streamproc_deadletters",
            "Input records dead-lettered, by topic and reason class.",
            labels=["topic", "reason"],
        )
        transitions = CounterMetricFamily(
            "streamproc_alert_transitions",
            "Alerts announced, by type and state (firing, resolved).",
            labels=["type", "state"],
        )
        redis_errors = CounterMetricFamily(
            "streamproc_redis_errors",
            "Redis operations that failed and were retried, by operation.",
            labels=["op"],
        )
        for key, value in sorted(stats.items()):
            head, _, rest = key.partition(".")
            if head == "consumed":
                consumed.add_metric([rest], value)
            elif key in _OUTCOMES:
                outcome.add_metric(list(_OUTCOMES[key]), value)
            elif head == "deadletter":
                dead.add_metric(rest.split(".", 1), value)
            elif head == "alerts":
                transitions.add_metric(rest.split(".", 1), value)
            elif head == "redis_errors":
                redis_errors.add_metric([rest], value)
        yield from (consumed, outcome, dead, transitions, redis_errors)
        yield CounterMetricFamily(
            "streamproc_orders", "Rebalance orders published.", value=stats.get("orders", 0)
        )
        yield CounterMetricFamily(
            "streamproc_evaluations",
            "Account evaluations (rows of vectorized passes).",
            value=stats.get("evaluations", 0),
        )
        yield CounterMetricFamily(
            "streamproc_breaches",
            "Accounts that left their bands (in band at their previous evaluation, out now).",
            value=stats.get("breaches", 0),
        )
        accounts = GaugeMetricFamily(
            "streamproc_accounts", "Accounts this worker evaluates, by state.", labels=["state"]
        )
        for state, n in snap["accounts"].items():
            accounts.add_metric([state], n)
        firing = GaugeMetricFamily(
            "streamproc_alerts_firing", "Alerts firing that this worker announced, by type.", labels=["type"]
        )
        for type_, n in snap["firing"].items():
            firing.add_metric([type_], n)
        last = GaugeMetricFamily(
            "streamproc_last_event_timestamp_seconds",
            "Record timestamp of the newest record processed, by input topic.",
            labels=["topic"],
        )
        for topic, ts_ms in snap["last_event_ms"].items():
            last.add_metric([topic], ts_ms / 1000.0)
        lag = GaugeMetricFamily(
            "streamproc_consumer_lag",
            "Records behind the end of the topic (this worker's partitions).",
            labels=["topic"],
        )
        for topic, n in snap["lag"].items():
            lag.add_metric([topic], n)
        yield from (accounts, firing, last, lag)
        yield GaugeMetricFamily(
            "streamproc_partitions_owned", "Account partitions assigned and loaded.", value=snap["partitions"]
        )
