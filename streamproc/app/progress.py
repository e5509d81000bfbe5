"""How far the worker has read each input: consumed offsets and the newest record time per topic, and
from them the lag behind the end offsets (for /metrics)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping

from aiokafka import TopicPartition

from streamproc.settings import Topics


class Progress:
    """Consumed-up-to offsets per input partition and the newest record ts per logical topic."""

    def __init__(self, topics: Topics) -> None:
        self.topics = topics
        self.next_offsets: dict[TopicPartition, int] = {}
        self.last_event_ms: dict[str, int] = {}
        self.lag: dict[str, int] = {}  # at the watch's last look at the end offsets

    def consumed(self, tp: TopicPartition, next_offset: int, ts_ms: int) -> None:
        """Records of ``tp`` were processed up to ``next_offset`` (exclusive); the newest had ``ts_ms``."""
        self.next_offsets[tp] = next_offset
        logical = self.topics.logical(tp.topic)
        if ts_ms > self.last_event_ms.get(logical, 0):
            self.last_event_ms[logical] = ts_ms

    def behind(self, tps: list[TopicPartition], highwater: Callable[[TopicPartition], int | None]) -> int:
        """Records of ``tps`` between what was consumed and their high watermarks."""
        return sum(max(0, (highwater(tp) or 0) - self.next_offsets.get(tp, 0)) for tp in tps)

    def update_lag(
        self, ends: Mapping[TopicPartition, int], reads: Callable[[str, int], bool]
    ) -> dict[str, int]:
        """Records behind the end, per input topic, over the partitions this worker reads
        (``reads(logical, partition)``); kept for /metrics."""
        lag: Counter[str] = Counter()
        for tp, end in ends.items():
            logical = self.topics.logical(tp.topic)
            if logical == "deadletter" or not reads(logical, tp.partition):
                continue
            lag[logical] += max(0, end - self.next_offsets.get(tp, end))
        self.lag = dict(lag)
        return self.lag
