"""Which account partitions are this worker's: assigned, loaded from the store, suspended after a
revocation (kept in memory and reused only if nobody claimed them since), and who answers for each
alert subject and input partition."""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

import structlog

from streamproc.app.accounts import Accounts
from streamproc.app.ports import AccountStore, Clock, OwnerStore
from streamproc.core.alerts import Subject
from streamproc.kafka import partition_of

log = structlog.get_logger(__name__)


class _Store(OwnerStore, AccountStore, Protocol):
    """Claims and account loads."""


class Ownership:
    """Assignment, loading and handover of account partitions (Faust's rebalance hooks drive it)."""

    def __init__(
        self,
        store: _Store,
        accounts: Accounts,
        partitions: dict[str, int],
        recover: Callable[[set[int]], Awaitable[int]],
        lock: asyncio.Lock,
        clock: Clock,
        *,
        token: str | None = None,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.book = accounts.book
        self.partitions = partitions  # logical topic -> partition count
        self.recover = recover  # record orders a crashed owner published but did not record
        self.lock = lock
        self.clock = clock
        self.token = token or uuid.uuid4().hex
        self.assigned = False  # a first assignment arrived (possibly empty)
        self.owned: set[int] = set()  # account partitions assigned to this worker
        self.suspended: set[int] = set()  # revoked but still in memory (reused if assigned back)
        self.loaded: dict[int, asyncio.Event] = {}
        self.loading: dict[int, asyncio.Task[None]] = {}
        # called (under the lock) with the partitions gained in memory, reused or loaded
        self.on_gained: list[Callable[[set[int]], None]] = []

    # ---- questions -------------------------------------------------------------------------------

    def owns_partition(self, p: int) -> bool:
        """Whether account partition ``p`` is assigned to this worker and loaded."""
        event = self.loaded.get(p)
        return p in self.owned and event is not None and event.is_set()

    def owns_input(self, partition: int) -> bool:
        """Whether this worker answers for a quotes/instruments partition (dead letters, stored quotes):
        the owner of account partition ``partition mod N``, so exactly one worker does."""
        return self.owns_partition(partition % self.partitions["positions"])

    def owns_subject(self, subject: Subject) -> bool:
        """Whether this worker announces alerts about ``subject``: an instrument's quotes partition
        owner, an account's owner, and for topics the owner of account partition 0."""
        kind, ident = subject
        if kind == "instrument":
            return self.owns_input(partition_of(ident, self.partitions["quotes"]))
        if kind == "account":
            r = self.book.accounts.get(ident)
            part = self.accounts.part
            return r is not None and r < len(part) and self.owns_partition(int(part[r]))
        return self.owns_partition(0)

    def reads(self, logical: str, partition: int) -> bool:
        """Whether this worker consumes ``partition`` of an input topic (for its lag)."""
        if logical in ("positions", "targets", "executions"):
            return self.owns_partition(partition % self.partitions["positions"])
        return True

    def loaded_partitions(self) -> list[int]:
        return sorted(p for p in self.owned if self.owns_partition(p))

    async def wait_loaded(self, partitions: Iterable[int]) -> None:
        """Block until these account partitions are loaded."""
        for p in partitions:
            await self.loaded.setdefault(p, asyncio.Event()).wait()

    # ---- rebalances ------------------------------------------------------------------------------

    async def on_assigned(self, partitions: set[int]) -> None:
        """New assignment: reuse what is still ours, load the rest in the background."""
        self.assigned = True
        async with self.lock:
            new = partitions - self.owned
            owners = await self.store.owners(new) if new else {}
            keep = {p for p in new if p in self.suspended and owners.get(p) == self.token}
            self.owned |= partitions
            self.suspended -= partitions
            if keep:
                self.accounts.resume(keep)
            # the agent may already wait on a partition's event: reuse the object, never replace it
            for p in keep:
                self.loaded.setdefault(p, asyncio.Event()).set()
            self._gained(keep)
            for p in new - keep:
                self.loaded.setdefault(p, asyncio.Event()).clear()
                self.loading[p] = asyncio.create_task(self.load({p}))
        log.info(
            "partitions assigned",
            partitions=sorted(partitions),
            reused=sorted(keep),
            loading=sorted(new - keep),
        )

    async def on_revoked(self, partitions: set[int]) -> None:
        """Partitions taken away: finish the current evaluation, then stop evaluating their accounts."""
        async with self.lock:
            for p in partitions:
                task = self.loading.pop(p, None)
                if task is not None:
                    task.cancel()
                event = self.loaded.get(p)
                if event is not None and event.is_set():
                    self.suspended.add(p)
                    event.clear()
            self.owned -= partitions
            self.accounts.release(partitions)
        log.info("partitions revoked", partitions=sorted(partitions))

    async def load(self, partitions: set[int]) -> None:
        """Claim, recover unrecorded orders, then load the partitions' accounts from the store."""
        started = time.perf_counter()
        await self.store.claim(partitions, self.token)
        await self.recover(partitions)
        records = await self.store.load_partitions(partitions)
        async with self.lock:
            if not partitions <= self.owned:
                return
            rows = self.accounts.load(records, self.clock.time())
            for p in partitions:
                self.loaded[p].set()
                self.loading.pop(p, None)
            self._gained(partitions)
        gc.freeze()  # the loaded accounts live long: keep them out of the cyclic collector's scans
        log.info(
            "partitions loaded",
            partitions=sorted(partitions),
            accounts=int(rows.size),
            seconds=round(time.perf_counter() - started, 3),
        )

    def _gained(self, partitions: set[int]) -> None:
        for listener in self.on_gained:
            listener(partitions)

    def stop(self) -> None:
        for task in self.loading.values():
            task.cancel()
