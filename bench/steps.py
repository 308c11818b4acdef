"""Benchmarks look inside the pipeline: each step, and the writing of its plan, wrapped by name."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from mailbot import worker, writer

Wrapper = Callable[[str, Callable[..., Any]], Callable[..., Any]]


@contextmanager
def wrapped_steps(wrap: Wrapper) -> Iterator[None]:
    """While the block runs, every step of `worker.STEPS` runs as `wrap(name, step.run)`, and
    writing a plan as `wrap("write", writer.write)`."""
    lock_free, locked, write = worker.LOCK_FREE, worker.LOCKED, writer.write
    worker.LOCK_FREE = tuple(dataclasses.replace(s, run=wrap(s.name, s.run)) for s in lock_free)
    worker.LOCKED = tuple(dataclasses.replace(s, run=wrap(s.name, s.run)) for s in locked)
    writer.write = wrap("write", write)
    try:
        yield
    finally:
        worker.LOCK_FREE, worker.LOCKED, writer.write = lock_free, locked, write
