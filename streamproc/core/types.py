"""Array aliases, price flags and rebalance modes shared by the core modules."""

from __future__ import annotations

from enum import IntEnum, IntFlag

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]


class PriceFlag(IntFlag):
    """Why an instrument's price may not be traded on; an account holding a flagged one is not evaluable."""

    OK = 0
    MISSING = 1  # never quoted
    STALE = 2  # older than its max age
    CROSSED = 4  # bid > ask or non-positive
    OUTLIER = 8  # jump held until confirmed
    GAP = 16  # sequence gap in the feed
    CLOSED = 32  # its market is closed (between sessions): no order on a closed session's price
    EMPTY_ACCOUNT = 128  # account-level: total value <= 0 (not an instrument flag)


class Mode(IntEnum):
    """How far a rebalance trades: to target, to the band edge (Leland) or to half the band (Daryanani)."""

    TARGET = 0
    EDGE = 1
    HALF = 2

    @classmethod
    def parse(cls, name: str) -> Mode:
        """Mode from its wire name (``target``, ``edge``, ``half``)."""
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"unknown rebalance mode {name!r}; use target, edge or half") from None
