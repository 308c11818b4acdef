"""Figures counted as work is written (tickets opened, mail sent), handed on at commit.

Code that writes counts into its store's `tally` inside the transaction; when the transaction
commits the figures go to the sink (the daemon's metrics), when it rolls back they are dropped,
so a message retried after a failure is counted once. Without a sink nothing is kept.
"""

from __future__ import annotations

from collections.abc import Callable

Figure = tuple[str, tuple[str, ...], float]  # (name, labels, value)
Sink = Callable[[list[Figure]], None]


class Tally:
    __slots__ = ("pending", "sink")

    def __init__(self) -> None:
        self.sink: Sink | None = None
        self.pending: list[Figure] = []

    @property
    def enabled(self) -> bool:
        return self.sink is not None

    def add(self, name: str, *labels: str, value: float = 1.0) -> None:
        if self.sink is not None:
            self.pending.append((name, labels, value))

    def mark(self) -> int:
        return len(self.pending)

    def rollback(self, mark: int = 0) -> None:
        del self.pending[mark:]

    def commit(self) -> None:
        if self.pending:
            figures, self.pending = self.pending, []
            if self.sink is not None:
                self.sink(figures)
