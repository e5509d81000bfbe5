"""The operators' trading states in a worker: read from the store every watch tick (so a halt set by
``streamproc halt`` is honoured by every worker within a second), applied to the book, and audited as
``trading_state`` alerts (firing while a state other than active is in force, resolved on resume)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from streamproc.app.accounts import Accounts
from streamproc.core.alerts import Episode, Key, episode_id
from streamproc.core.trading import StateDoc, TradingStates

TYPES = ("trading_state",)


class Trading:
    """The states last applied to this worker's book."""

    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts
        self.docs: dict[str, StateDoc] = {}

    def apply(self, docs: Mapping[str, StateDoc]) -> bool:
        """Apply the stored states when they changed (every owned account is evaluated again, so a
        resume releases what a halt held); True if they did."""
        if dict(docs) == self.docs:
            return False
        self.docs = dict(docs)
        self.accounts.book.set_trading(TradingStates(self.docs))
        self.accounts.dirty.update(np.flatnonzero(self.accounts.owned).tolist())
        return True

    def episodes(self) -> dict[Key, Episode]:
        """One ``trading_state`` episode per state in force, named by when it was set."""
        out: dict[Key, Episode] = {}
        for doc in self.docs.values():
            subject = (doc["scope"], doc["id"])
            ep = Episode(
                "trading_state",
                subject,
                episode_id("trading_state", subject, doc["at_ms"]),
                doc["at_ms"],
                dict(doc),
            )
            out[ep.key] = ep
        return out
