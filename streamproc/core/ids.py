"""Dense integer indices for string ids (accounts, instruments), so the book can be numpy arrays."""

from __future__ import annotations

from collections.abc import Iterable


class IdMap:
    """Assigns 0, 1, 2, ... to ids in first-seen order; lookups both ways."""

    __slots__ = ("_ids", "_index")

    def __init__(self) -> None:
        self._index: dict[str, int] = {}
        self._ids: list[str] = []

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def get(self, key: str) -> int | None:
        """Index of ``key`` or None when unknown."""
        return self._index.get(key)

    def add(self, key: str) -> int:
        """Index of ``key``, assigning the next one when it is new."""
        idx = self._index.get(key)
        if idx is None:
            idx = len(self._ids)
            self._index[key] = idx
            self._ids.append(key)
        return idx

    def get_many(self, keys: Iterable[str]) -> list[int | None]:
        """Indices of ``keys`` in order, None for unknown ones (one C-level pass)."""
        return list(map(self._index.get, keys))

    def add_many(self, keys: Iterable[str]) -> list[int]:
        """Indices of ``keys`` in order, assigning new ones as needed."""
        return [self.add(k) for k in keys]

    def id_of(self, idx: int) -> str:
        """The id at index ``idx``."""
        return self._ids[idx]

    def ids(self) -> list[str]:
        """All ids in index order (a copy)."""
        return list(self._ids)
