"""Accounts whose model needs an advisor's adjustment: they hold or target an instrument the limits make
ineligible for buys (restricted), so their targets cannot be followed. Flagged as ``needs_adjustment``
(as Alpaca's rebalancer does), with one alert episode per account while it lasts."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from streamproc.core.alerts import Episode, Key, episode_id


class Adjustments:
    """Per book row: the restricted instruments it holds or targets, and its episode."""

    def __init__(self) -> None:
        self.episodes: dict[int, Episode] = {}
        self.closed: list[Episode] = []

    def update(
        self, evaluated: Iterable[int], flagged: dict[int, tuple[str, list[str]]], now_ms: int
    ) -> None:
        """After an evaluation: ``flagged`` (row -> (account, restricted instruments)) among
        ``evaluated`` rows; the others of ``evaluated`` need nothing any more."""
        for r in evaluated:
            hit = flagged.get(r)
            ep = self.episodes.get(r)
            if hit is None:
                if ep is not None:
                    self.closed.append(self.episodes.pop(r))
                continue
            account, names = hit
            subject = ("account", account)
            ident = episode_id("needs_adjustment", subject, "+".join(names))
            if ep is not None and ep.id == ident:
                continue
            if ep is not None:
                self.closed.append(ep)
            self.episodes[r] = Episode("needs_adjustment", subject, ident, now_ms, {"restricted": names})

    def why(self, r: int) -> str | None:
        ep = self.episodes.get(r)
        return None if ep is None else f"needs_adjustment: restricted {', '.join(ep.details['restricted'])}"

    def open_episodes(self, owned: Callable[[int], bool]) -> dict[Key, Episode]:
        return {ep.key: ep for r, ep in self.episodes.items() if owned(r)}

    def drain_closed(self) -> list[Episode]:
        out, self.closed = self.closed, []
        return out
