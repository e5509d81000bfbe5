"""When an account's drift document in Redis is rewritten, and since when its status holds.

The document is what the on-call engineer reads (`streamproc inspect account`): written only on a
status change, an account that drifted from 60 % to 62.3 % still showed 60 %. It is rewritten when
its status changes, when a weight moved more than ``min_move`` since the last write, or ``refresh_s``
after the last write of an account evaluated again; ``status_since`` (when the status began) is kept
apart from ``evaluated_at`` (the evaluation written). Columns per account, no Python per account.
"""

from __future__ import annotations

import math

import numpy as np

from streamproc.core.types import F64, I64, Bool
from streamproc.wire.documents import DriftDoc


class Freshness:
    """Per account: the weights last written (by slot, with the slot's instrument), when, and since
    when the written status holds."""

    def __init__(self, min_move: float, refresh_s: float) -> None:
        if not min_move >= 0 or not refresh_s > 0:
            raise ValueError(f"min_move must be >= 0 and refresh_s > 0, got {min_move!r}, {refresh_s!r}")
        self.min_move = min_move
        self.refresh_s = refresh_s
        self.written_at: F64 = np.zeros(0)  # wall seconds, -inf: never
        self.since_ms: I64 = np.zeros(0, dtype=np.int64)
        self.since_code: I64 = np.full(0, -1, dtype=np.int64)  # the status since_ms is about
        self._w: F64 = np.zeros((0, 0))
        self._inst: I64 = np.zeros((0, 0), dtype=np.int64)

    def grow(self, n: int, k: int) -> None:
        """Room for ``n`` accounts of ``k`` slots (new rows and slots: never written)."""
        have, width = self._w.shape
        if n <= have and k <= width:
            return
        n2, k2 = max(n, 2 * have, 64) if n > have else have, max(k, width)
        w = np.full((n2, k2), np.nan)
        w[:have, :width] = self._w
        inst = np.full((n2, k2), -2, dtype=np.int64)
        inst[:have, :width] = self._inst
        self._w, self._inst = w, inst
        if n2 > have:
            extra = n2 - have
            self.written_at = np.concatenate([self.written_at, np.full(extra, -math.inf)])
            self.since_ms = np.concatenate([self.since_ms, np.zeros(extra, dtype=np.int64)])
            self.since_code = np.concatenate([self.since_code, np.full(extra, -1, dtype=np.int64)])

    def due(self, rows: I64, now: float, instruments: I64, weights: F64) -> Bool:
        """Per row: its weights moved more than ``min_move`` since the last write (or its slots hold
        other instruments), or the last write is ``refresh_s`` old."""
        self.grow(int(rows.max()) + 1 if rows.size else 0, instruments.shape[1])
        k = instruments.shape[1]
        last_w, last_inst = self._w[rows, :k], self._inst[rows, :k]
        used = instruments >= 0
        with np.errstate(invalid="ignore"):
            moved = used & ~(np.abs(weights - last_w) <= self.min_move)  # NaN (never written): moved
        out: Bool = moved.any(axis=1) | (last_inst != np.where(used, instruments, -2)).any(axis=1)
        out |= now - self.written_at[rows] >= self.refresh_s
        return out

    def written(self, rows: I64, now: float, instruments: I64, weights: F64 | None) -> None:
        """Record what was written for ``rows`` (weights None: a document without weights)."""
        if rows.size == 0:
            return
        k = instruments.shape[1]
        self.grow(int(rows.max()) + 1, k)
        self.written_at[rows] = now
        self._inst[rows] = -2
        self._inst[rows, :k] = np.where(instruments >= 0, instruments, -2)
        self._w[rows] = np.nan
        if weights is not None:
            self._w[rows, :k] = weights

    def since(self, rows: I64, codes: I64, now_ms: int) -> I64:
        """When the status ``codes`` of ``rows`` began: now for a new status, else as recorded."""
        if rows.size:
            self.grow(int(rows.max()) + 1, 0)
        new = self.since_code[rows] != codes
        started = rows[new]
        self.since_ms[started] = now_ms
        self.since_code[started] = codes[new]
        out: I64 = self.since_ms[rows]
        return out

    def restore(self, row: int, code: int, doc: DriftDoc | None) -> None:
        """After a load: the stored document's status and since (its weights are not trusted: the
        account is written again when it is next evaluated)."""
        self.grow(row + 1, 0)
        self.written_at[row] = -math.inf
        self._inst[row] = -2
        self._w[row] = np.nan
        if doc is None:
            self.since_code[row] = -1
            return
        self.since_code[row] = code
        self.since_ms[row] = int(doc.get("status_since", doc["evaluated_at"]))
