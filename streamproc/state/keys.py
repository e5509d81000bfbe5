"""The Redis key layout (docs/operations.md, "State in Redis"). Per-account and per-instrument keys carry
the id in a ``{hash tag}``, so on Redis Cluster everything of one account lives in one slot."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names under one namespace prefix (``sp:`` or ``<namespace>:sp:``)."""

    prefix: str

    def account(self, account: str) -> str:
        """HASH: ``q:<instrument>`` holdings, cash, seq, pts, part, tv, targets, order, drift."""
        return f"{self.prefix}acct:{{{account}}}"

    def emitted(self, account: str) -> str:
        """SET: every order event_id published for the account (never published twice)."""
        return f"{self.prefix}emitted:{{{account}}}"

    def partition(self, partition: int) -> str:
        """SET: accounts whose records live in this partition of positions/targets/orders."""
        return f"{self.prefix}partition:{partition}"

    def owner(self, partition: int) -> str:
        """STRING: token of the worker that last claimed the partition."""
        return f"{self.prefix}owner:{partition}"

    def quote(self, instrument: str) -> str:
        """HASH: bid, ask, seq, ts of the last accepted quote."""
        return f"{self.prefix}quote:{{{instrument}}}"

    @property
    def quote_instruments(self) -> str:
        """SET: instruments with a ``quote`` hash."""
        return f"{self.prefix}quotes"

    @property
    def quote_offsets(self) -> str:
        """HASH: quotes partition -> next offset the stored quotes reflect."""
        return f"{self.prefix}offsets:quotes"

    @property
    def order_offsets(self) -> str:
        """HASH: orders partition -> next offset after the last order recorded in ``emitted``."""
        return f"{self.prefix}offsets:orders"

    @property
    def held(self) -> str:
        """SET: instruments some account has held or targeted (``quote_stale`` fires only for these)."""
        return f"{self.prefix}held"

    @property
    def alerts(self) -> str:
        """HASH: ``<type>|<subject kind>|<subject id>`` -> the firing alert's episode (JSON)."""
        return f"{self.prefix}alerts"

    @property
    def storm(self) -> str:
        """STRING: the breach storm holding all orders (JSON), absent when orders flow."""
        return f"{self.prefix}storm"

    @property
    def storm_mute(self) -> str:
        """STRING with a TTL: storm detection is off while it exists (set on release)."""
        return f"{self.prefix}storm:mute"

    @property
    def reconcile(self) -> str:
        """HASH: account -> ms of an operator's request to lift its position-gap quarantine."""
        return f"{self.prefix}control:reconcile"

    @property
    def order_requests(self) -> str:
        """HASH: account -> ``retry|release:<ms>``, an operator's decision on an account whose orders
        went unanswered."""
        return f"{self.prefix}control:orders"

    @property
    def trading(self) -> str:
        """HASH: ``<scope>:<id>`` -> a trading state an operator set (halted or reducing), JSON."""
        return f"{self.prefix}control:trading"

    @property
    def workers(self) -> str:
        """HASH: worker token -> its latest summary (partitions, accounts, suppressed), JSON."""
        return f"{self.prefix}workers"
