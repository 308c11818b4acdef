"""Timer handlers for SLA warnings, breaches and account-manager pages (registered on import)."""

from __future__ import annotations
