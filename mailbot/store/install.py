"""Queries of the install: the id that binds our tokens to this database (m012)."""

from __future__ import annotations

from mailbot.store.base import Queries


class Install(Queries):
    def install_id(self) -> str:
        """Made with the database; a new or other database has another one."""
        return str(self.store.scalar("SELECT install_id FROM install WHERE id = 1"))
