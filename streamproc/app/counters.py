"""What the worker counts, as typed counter families passed to the components that count; every family
is exported at /metrics (``metrics.py`` walks them all) and the summary shows a few."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """What was done with a decoded input record (``streamproc_messages_total{outcome}``)."""

    CHECKED = "checked"  # a quote that passed the duplicate check
    DUPLICATE = "duplicate"
    APPLIED = "applied"
    REPLAYED = "replayed"
    GAP_FILLED = "gap_filled"


class Family:
    """One counter family: a value per tuple of label values (no labels: the empty tuple)."""

    __slots__ = ("help", "labels", "name", "values")

    def __init__(self, name: str, help: str, labels: tuple[str, ...] = ()) -> None:
        self.name = name  # the exported name without ``_total``
        self.help = help
        self.labels = labels
        self.values: dict[tuple[str, ...], int] = {}

    def inc(self, *labels: str, n: int = 1) -> None:
        """Add ``n`` to the series of these label values (one per label name)."""
        self.values[labels] = self.values.get(labels, 0) + n

    def get(self, *labels: str) -> int:
        """The value of one series (0 before it was counted)."""
        return self.values.get(labels, 0)

    @property
    def total(self) -> int:
        """The sum over all series."""
        return sum(self.values.values())


class Counters:
    """The worker's counter families."""

    def __init__(self) -> None:
        self.consumed = Family(
            "streamproc_messages_consumed", "Input records consumed, by topic.", ("topic",)
        )
        self.messages = Family(
            "streamproc_messages",
            "Decoded input records by topic and what was done with them.",
            ("topic", "outcome"),
        )
        self.deadletters = Family(
            "streamproc_deadletters",
            "Input records dead-lettered, by topic and reason class.",
            ("topic", "reason"),
        )
        self.alerts = Family(
            "streamproc_alert_transitions",
            "Alerts announced, by type and state (firing, resolved).",
            ("type", "state"),
        )
        self.redis_errors = Family(
            "streamproc_redis_errors", "Redis operations that failed and were retried, by operation.", ("op",)
        )
        self.orders = Family("streamproc_orders", "Rebalance orders published.")
        self.throttled = Family(
            "streamproc_orders_throttled",
            "Drafted orders the order throttle held for a later pass (drafted again then).",
        )
        self.evaluations = Family(
            "streamproc_evaluations", "Account evaluations (rows of vectorized passes)."
        )
        self.breaches = Family(
            "streamproc_breaches",
            "Accounts that left their bands (in band at their previous evaluation, out now).",
        )
        self.passes = Family(
            "streamproc_evaluation_passes", "Evaluation passes run (with or without candidates)."
        )
        self.deferred = Family(
            "streamproc_evaluations_deferred",
            "Evaluation passes skipped while the price feed works through a backlog.",
        )
        self.per_record_batches = Family(
            "streamproc_quote_batches_per_record",
            "Quote batches decoded record by record (something unusual in them) instead of as columns.",
        )
        self.watch_errors = Family(
            "streamproc_watch_offset_errors",
            "Watch ticks whose end offsets the broker did not answer (retried).",
        )

    def families(self) -> list[Family]:
        """Every family, for export."""
        return [v for v in vars(self).values() if isinstance(v, Family)]

    def summary(self) -> dict[str, int]:
        """The counts `streamproc inspect status` shows, by their dotted names."""
        m = self.messages
        return {
            "quotes.duplicates": m.get("quotes", Outcome.DUPLICATE),
            "positions.replayed": m.get("positions", Outcome.REPLAYED),
            "positions.gap_filled": m.get("positions", Outcome.GAP_FILLED),
            "orders": self.orders.total,
            "evaluations": self.evaluations.total,
            "deadletters": self.deadletters.total,
        }
