"""Shared fixtures: the third-party corpus, fresh configs and stores."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

# Real servers for protocol tests: the `dovecot` and `smtp_sink` fixtures.
pytest_plugins = ["tests.servers"]

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"


def pytest_configure(config: pytest.Config) -> None:
    """Cache the shipped topics' keyword forms once, before xdist starts workers and daemons."""
    if not hasattr(config, "workerinput"):
        import tempfile

        from mailbot import config as config_module
        from mailbot.pipeline import topics
        from tests.helpers import write_config

        with tempfile.TemporaryDirectory() as directory:
            topics.warm(config_module.load(write_config(Path(directory))).topics)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def corpus() -> Path:
    """Path of ../shared/corpus; skips when absent, but fails in CI (CI=true)."""
    if not CORPUS.is_dir():
        if _in_ci():
            pytest.fail(f"corpus missing at {CORPUS} (CI requires it)")
        pytest.skip(f"corpus not found at {CORPUS}")
    return CORPUS


@pytest.fixture
def bot(tmp_path: Path):
    """A fresh mailbot on the shipped config, in a temp dir, with the Maildir transport."""
    from tests.helpers import Mailbot

    instance = Mailbot(tmp_path)
    yield instance
    instance.close()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `slow` first: started last, one would keep a parallel run waiting for it."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable


@pytest.fixture
def restore_logging():
    """The root logger's handlers and level put back after the test (`logs.setup` changes them)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
