"""Prometheus metrics of one worker. Counters are the components' typed families (``counters.py``) read
at scrape time (nothing per event on the hot path); latencies are histograms observed once per pass or
Redis call. Names follow Prometheus conventions: one ``streamproc_`` prefix, base units, ``_total``
counters, and no account or instrument ids as labels."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypedDict

from prometheus_client import CollectorRegistry, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from streamproc.app.counters import Counters

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The worker's registry: the counters and gauges collector, latency histograms, and faust's sensor
    (added by the worker). ``gauges`` is called at scrape time."""

    def __init__(self, counters: Counters, gauges: Callable[[], Gauges]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_WorkerCollector(counters, gauges))
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

        self.limits = Info(
            "streamproc_limits",
            "The platform limits this worker runs: their version and where they came from.",
            registry=self.registry,
        )

    def observe_redis(self, op: str, seconds: float) -> None:
        """Hook for the store: one operation took ``seconds``."""
        self.redis.labels(op=op).observe(seconds)


class Gauges(TypedDict):
    """The worker's gauges, read at scrape time."""

    accounts: Mapping[str, int]  # owned accounts by state
    firing: Mapping[str, int]  # alerts firing this worker announced, by type
    last_event_ms: Mapping[str, int]  # logical topic -> newest record ts processed
    lag: Mapping[str, int]  # logical topic -> records behind the end
    partitions: int  # account partitions assigned and loaded
    waiting_notional: tuple[float, float]  # (buy, sell) notional a thin book left for later orders


class _WorkerCollector(Collector):
    """Turns the counter families and gauges into metric families at scrape time."""

    def __init__(self, counters: Counters, gauges: Callable[[], Gauges]) -> None:
        self.counters = counters
        self.gauges = gauges

    def describe(self) -> list[Any]:
        return []  # series vary with what happened: describe at scrape time only

    def collect(self) -> Iterator[Any]:
        for family in self.counters.families():
            if family.labels:
                out = CounterMetricFamily(family.name, family.help, labels=list(family.labels))
                for labels, value in sorted(family.values.items()):
                    out.add_metric(list(labels), value)
            else:
                out = CounterMetricFamily(family.name, family.help, value=family.get())
            yield out
        snap = self.gauges()
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
        waiting = GaugeMetricFamily(
            "streamproc_depth_waiting_notional",
            "Notional the depth cap (max participation of the displayed size) left for later orders, at "
            "mid, by side.",
            labels=["side"],
        )
        buy, sell = snap["waiting_notional"]
        waiting.add_metric(["buy"], buy)
        waiting.add_metric(["sell"], sell)
        yield waiting
