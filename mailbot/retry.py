"""Retrying what failed: one backoff curve, and one rule for when to stop trying.

The worker (inbound mail), the outbox sender (outgoing mail), the scheduler (timers) and the
IMAP source (reconnects) share the backoff curve; all but the outbox sender (which gives up on
a 5xx or after its queue lifetime) also stop after a number of attempts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


def backoff(
    failures: int, *, first: float, cap: float, jitter: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait after `failures` failures in a row: `first`, doubling, at most `cap`.

    ± `jitter` (a fraction) spreads retries, so that clients don't stampede a server that
    comes back.
    """
    delay = min(cap, first * 2 ** max(0, failures - 1))
    return delay * (rng or random).uniform(1 - jitter, 1 + jitter)


@dataclass(frozen=True)
class Failure:
    attempts: int  # this one included
    final: bool  # give up: no further attempt


def failed(attempts_before: int, max_attempts: int) -> Failure:
    """Count one more failed attempt; final when the attempts ran out."""
    attempts = attempts_before + 1
    return Failure(attempts, attempts >= max_attempts)
