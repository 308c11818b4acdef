"""The Prometheus endpoint: counters kept by the running daemon, gauges read from the database.

Counters and the latency histogram count what this daemon process committed (`mailbot.tally`
hands figures over at each commit) and start from zero at every start, as Prometheus counters
do; `mailbot stats` reads lifetime figures from the database instead. Gauges (queue, backlogs,
oldest unanswered ticket, nearest breach) are read at scrape time by `StoreCollector` with the
same indexed queries `mailbot stats` uses, so they are right even after a restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from mailbot.store import Store
from mailbot.tally import Figure

log = logging.getLogger("mailbot.metrics")

# Seconds from arrival to the acknowledgement reaching the relay.
ACK_BUCKETS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600)

GAUGES = {  # stats key -> (metric name, help)
    "inbound_pending": ("mailbot_inbound_pending", "Stored mail waiting for the pipeline."),
    "quarantined": ("mailbot_quarantined_messages", "Mail in quarantine (`mailbot quarantine`)."),
    "outbox_pending": ("mailbot_outbox_pending", "Outgoing mail not delivered yet."),
    "outbox_failed": ("mailbot_outbox_failed", "Outgoing mail that failed for good."),
    "unanswered": ("mailbot_unanswered_tickets", "Open tickets without a first response."),
    "oldest_unanswered_seconds": (
        "mailbot_oldest_unanswered_age_seconds",
        "Age of the oldest open ticket without a first response (absent: none).",
    ),
    "next_breach_seconds": (
        "mailbot_next_sla_breach_seconds",
        "Seconds until the nearest first-response breach (absent: none due).",
    ),
}


class StoreCollector(Collector):
    """Gauges computed from the database at every scrape, on a connection of its own."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self._lock = threading.Lock()
        self._store: Store | None = None

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if self._store is None:
                self._store = Store(self.db_path, migrate=False)
            figures = self._store.stats.gauges(datetime.now(UTC))
        for key, (name, text) in GAUGES.items():
            family = GaugeMetricFamily(name, text)
            if figures[key] is not None:
                family.add_metric([], figures[key])
            yield family

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


class Metrics:
    """This daemon's registry: counters fed by committed work, gauges from the database."""

    def __init__(self, db_path: Path) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.inbound = Counter(
            "mailbot_inbound",
            "Stored mail taken through the pipeline, by source and outcome.",
            ["source", "outcome"],
            registry=registry,
        )
        self.opened = Counter("mailbot_tickets_opened", "Tickets opened.", registry=registry)
        self.closed = Counter("mailbot_tickets_closed", "Tickets closed.", registry=registry)
        self.outgoing = Counter(
            "mailbot_outgoing",
            "Delivery attempts of outgoing mail, by template and result (sent, deferred, failed).",
            ["template", "status"],
            registry=registry,
        )
        self.breaches = Counter(
            "mailbot_sla_breaches", "First-response deadlines breached.", registry=registry
        )
        self.ack_latency = Histogram(
            "mailbot_intake_to_ack_seconds",
            "Seconds from a new ticket's mail arriving to its acknowledgement reaching the relay.",
            buckets=ACK_BUCKETS,
            registry=registry,
        )
        self.collector = StoreCollector(db_path)
        registry.register(self.collector)
        ProcessCollector(registry=registry)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def record(self, figures: Iterable[Figure]) -> None:
        """The figures of one committed transaction (the tally's sink)."""
        for name, labels, value in figures:
            if name == "inbound":
                self.inbound.labels(*labels).inc(value)
            elif name == "outgoing":
                self.outgoing.labels(*labels).inc(value)
            elif name == "tickets_opened":
                self.opened.inc(value)
            elif name == "tickets_closed":
                self.closed.inc(value)
            elif name == "sla_breaches":
                self.breaches.inc(value)
            elif name == "ack_latency":
                self.ack_latency.observe(value)

    def serve(self, host: str, port: int) -> None:
        """Answer GET /metrics on host:port in a thread of its own."""
        self._server, self._thread = start_http_server(port, host, self.registry)
        log.info("metrics endpoint listening", extra={"address": f"{host}:{port}"})

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.collector.close()
