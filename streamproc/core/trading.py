"""Trading states set by operators: ACTIVE, REDUCING (only legs that reduce a position), HALTED (no
legs), per instrument, tier, account or for everything. An instrument's state is the strictest of its
own, its tier's and the global one; an account's own state applies to all its legs on top."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from enum import IntEnum, StrEnum
from typing import TypedDict


class TradingState(IntEnum):
    """Ordered by strictness: the strictest state that applies wins."""

    ACTIVE = 0
    REDUCING = 1
    HALTED = 2

    @property
    def wire(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, raw: str) -> TradingState:
        try:
            return cls[raw.upper()]
        except KeyError:
            raise ValueError(f"unknown trading state {raw!r}: active, reducing or halted") from None


class Scope(StrEnum):
    """What a trading state is set on."""

    GLOBAL = "global"
    TIER = "tier"
    INSTRUMENT = "instrument"
    ACCOUNT = "account"


GLOBAL_ID = "*"


class StateDoc(TypedDict):
    """A trading state as stored (Redis ``control:trading``) and audited (alert details)."""

    scope: str
    id: str
    state: str
    reason: str
    by: str
    at_ms: int


def field(scope: Scope, ident: str) -> str:
    """The stored field of a state: ``instrument:EQ``, ``global:*``."""
    return f"{scope.value}:{GLOBAL_ID if scope == Scope.GLOBAL else ident}"


@dataclass(frozen=True)
class TradingStates:
    """The states in force, by scope and id (ACTIVE ones are simply absent)."""

    docs: Mapping[str, StateDoc]
    _accounts: dict[str, TradingState] = dataclass_field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        prefix = f"{Scope.ACCOUNT.value}:"
        own = {
            k[len(prefix) :]: TradingState.parse(d["state"])
            for k, d in self.docs.items()
            if k.startswith(prefix)
        }
        object.__setattr__(self, "_accounts", own)  # asked for every account the book registers

    def _of(self, scope: Scope, ident: str | None) -> TradingState:
        doc = self.docs.get(field(scope, ident or "")) if ident is not None else None
        return TradingState.parse(doc["state"]) if doc else TradingState.ACTIVE

    def instrument(self, instrument: str, tier: str | None) -> TradingState:
        """The strictest of the instrument's, its tier's and the global state."""
        return max(
            self._of(Scope.GLOBAL, GLOBAL_ID),
            self._of(Scope.TIER, tier),
            self._of(Scope.INSTRUMENT, instrument),
        )

    def accounts(self) -> dict[str, TradingState]:
        """Accounts with a state of their own."""
        return self._accounts


NO_STATES = TradingStates({})
