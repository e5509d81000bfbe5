"""The pure drift engine (numpy and stdlib only): book, bands, evaluation, rebalance legs."""

from streamproc.core.bands import Band, BandPolicy
from streamproc.core.book import CASH, Book
from streamproc.core.evaluate import Evaluation, Shift
from streamproc.core.legs import Leg, LegLimits, LegPlan
from streamproc.core.types import Mode, PriceFlag

__all__ = [
    "CASH",
    "Band",
    "BandPolicy",
    "Book",
    "Evaluation",
    "Leg",
    "LegLimits",
    "LegPlan",
    "Mode",
    "PriceFlag",
    "Shift",
]
