"""What every part of the daemon needs at hand: config, store, signer and templates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mailbot import templates as templates_module
from mailbot.config import Config
from mailbot.files import private_dir, tighten
from mailbot.store import Store
from mailbot.templates import Templates
from mailbot.tokens import Signer, load_secret


@dataclass
class Context:
    cfg: Config
    store: Store
    signer: Signer
    templates: Templates

    @property
    def data_dir(self) -> Path:
        return self.cfg.mailbot.data_dir

    def close(self) -> None:
        self.store.close()


def database_path(cfg: Config) -> Path:
    return cfg.mailbot.data_dir / "mailbot.sqlite3"


def open_context(cfg: Config, *, migrate: bool = True) -> Context:
    """A context with its own database connection (one per thread)."""
    data_dir = cfg.mailbot.data_dir
    private_dir(data_dir)
    tighten(data_dir)
    return Context(
        cfg=cfg,
        store=Store(database_path(cfg), migrate=migrate),
        signer=Signer(load_secret(data_dir), cfg.mailbot.domain),
        templates=templates_module.load(cfg.mailbot.templates),
    )
