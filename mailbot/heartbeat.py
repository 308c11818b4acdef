"""Liveness of the daemon's parts: each part beats while it works; a stale beat means hung.

A thread that died stops beating, and so does one that is stuck (a handler that never returns,
a lock never released): the watchdog looks at the beats, not only at whether threads exist.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Heartbeats:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._allowance: dict[str, float] = {}

    def register(self, part: str, allowance: float) -> None:
        """Watch `part` from now on; it is hung once `allowance` seconds pass without a beat."""
        with self._lock:
            self._last[part] = self._clock()
            self._allowance[part] = allowance

    def beat(self, part: str) -> None:
        self._last[part] = self._clock()  # one store: no lock needed on the hot path

    def beater(self, part: str) -> Callable[[], None]:
        return lambda: self.beat(part)

    def stale(self) -> dict[str, float]:
        """Parts whose last beat is older than their allowance: seconds since it, by part."""
        now = self._clock()
        with self._lock:
            ages = {part: now - last for part, last in self._last.items()}
            return {p: age for p, age in ages.items() if age > self._allowance[p]}
