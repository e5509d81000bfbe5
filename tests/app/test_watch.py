"""The watch's topic detectors, no I/O."""

from __future__ import annotations

from streamproc.app.watch import Watch
from streamproc.settings import Settings

SETTINGS = Settings.from_env(
    {
        "STREAMPROC_NAMESPACE": "n",
        "STREAMPROC_FEED_SILENT_S": "quotes=3",
        "STREAMPROC_STORM_MIN_ACCOUNTS": "10",
        "STREAMPROC_STORM_SHARE": "0.2",
        "STREAMPROC_DEADLETTER_RATE_PER_MIN": "60",
        "STREAMPROC_DEADLETTER_WINDOW_S": "10",
    }
)
T = SETTINGS.topics


def watch() -> Watch:
    """A watch whose referenced instruments are known and never close (their quotes always due)."""
    w = Watch(SETTINGS)
    w.quotes_due_known = True
    return w


def offsets(quotes: int, dead: int = 0) -> dict[str, int]:
    return {"quotes": quotes, "positions": 0, "targets": 0, "instruments": 0, "deadletter": dead}


def test_a_topic_that_stops_after_moving_is_silent_with_a_stable_episode_id() -> None:
    w = watch()
    assert not w.topic_episodes(0.0, offsets(5), T, {})
    assert not w.topic_episodes(1.0, offsets(9), T, {})
    assert not w.topic_episodes(3.5, offsets(9), T, {})
    (ep,) = w.topic_episodes(4.0, offsets(9), T, {}).values()
    assert ep.subject == ("topic", "n.quotes") and ep.id == "feed_silent:n.quotes:9"
    assert [e.id for e in w.topic_episodes(9.0, offsets(9), T, {}).values()] == [ep.id]
    assert not w.topic_episodes(10.0, offsets(10), T, {})
    resumed = watch()  # a worker starting during the silence, seeded from the newest record
    resumed.seed(offsets(9), {"quotes": 1_000})
    assert [e.id for e in resumed.topic_episodes(20.0, offsets(9), T, {}).values()] == [ep.id]


def test_never_moving_topics_are_not_silent() -> None:
    w = Watch(SETTINGS)
    for t in range(10):
        assert not w.topic_episodes(float(t), offsets(5), T, {})


def test_the_dead_letter_rate_fires_above_the_threshold_and_ends_with_the_window() -> None:
    w = Watch(SETTINGS)
    w.topic_episodes(0.0, offsets(1, 0), T, {})
    w.topic_episodes(1.0, offsets(2, 5), T, {})  # 5 in 10 s = 30/min: fine
    (ep,) = w.topic_episodes(2.0, offsets(3, 20), T, {}).values()  # 20 in 10 s = 120/min
    assert ep.type == "deadletter_rate" and ep.details["per_min"] == 120.0
    assert list(w.topic_episodes(5.0, offsets(4, 20), T, {}).values()) == [ep]
    assert not w.topic_episodes(13.0, offsets(5, 20), T, {})
    restarted = Watch(SETTINGS)  # keeps the announced episode until it has seen a whole window
    announced = {ep.key: ep}
    assert list(restarted.topic_episodes(20.0, offsets(5, 20), T, announced).values()) == [ep]
    assert list(restarted.topic_episodes(29.0, offsets(5, 20), T, announced).values()) == [ep]
    assert not restarted.topic_episodes(30.0, offsets(5, 20), T, announced)


def test_quotes_silence_counts_in_session_time_and_only_once_it_is_known() -> None:
    w = Watch(SETTINGS)  # just started: which instruments it watches is not known yet
    w.seed(offsets(9), {"quotes": 1_000})  # the newest quote: Friday's close, long ago
    assert not w.topic_episodes(100_000.0, offsets(9), T, {})  # no page at start-up on a weekend
    w.quotes_due_known, w.quotes_due_ms = True, None  # every referenced market closed
    assert not w.topic_episodes(100_001.0, offsets(9), T, {})
    w.quotes_due_ms = 100_000_000  # opened at 100,000 s: silent for the 3 s since, not since Friday
    assert not w.topic_episodes(100_002.0, offsets(9), T, {})
    (ep,) = w.topic_episodes(100_003.5, offsets(9), T, {}).values()
    assert ep.id == "feed_silent:n.quotes:9@100000000"  # not Friday's episode id: a new one
