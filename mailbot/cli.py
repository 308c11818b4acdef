"""The `mailbot` command: run the daemon, import mail, look at tickets, outbox and quarantine."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from mailbot import config as config_module
from mailbot import views
from mailbot.config import Config, ConfigError
from mailbot.context import Context, open_context

Command = Callable[[argparse.Namespace, Config], int]


def _print_json(document: object) -> None:
    json.dump(document, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def _table(rows: list[dict], columns: Sequence[str]) -> None:
    """A plain aligned table; long values are cut so one row stays one line."""
    cells = [[str(r.get(c) if r.get(c) is not None else "-")[:60] for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _context(cfg: Config) -> Context:
    return open_context(cfg)


def cmd_check_config(args: argparse.Namespace, cfg: Config) -> int:
    print(
        f"{cfg.path.name}: OK ({len(cfg.agents)} agents,"
        f" languages {', '.join(cfg.mailbot.languages)})"
    )
    return 0


def cmd_run(args: argparse.Namespace, cfg: Config) -> int:
    from mailbot import daemon

    if args.once:
        ctx = _context(cfg)
        try:
            summary = daemon.run_once(ctx)
        finally:
            ctx.close()
        print(summary)
        return 0
    return daemon.serve(cfg)


def cmd_import(args: argparse.Namespace, cfg: Config) -> int:
    from mailbot.sources.files import import_paths
    from mailbot.worker import process_pending

    ctx = _context(cfg)
    try:
        missing = [p for p in args.paths if not p.exists()]
        if missing:
            print(f"mailbot import: no such file: {', '.join(map(str, missing))}", file=sys.stderr)
            return 2
        new, known = import_paths(ctx.store, args.paths, no_replies=args.no_replies)
        counts = process_pending(ctx)
    finally:
        ctx.close()
    print(
        f"imported {new} new, {known} already known; processed {counts.processed},"
        f" ignored {counts.ignored}, quarantined {counts.quarantined}"
    )
    return 0


def _listing(
    cfg: Config, fetch: Callable[[Context], list[dict]], columns: Sequence[str], as_json: bool
) -> int:
    """Print rows from the store as one JSON document or as an aligned table."""
    ctx = _context(cfg)
    try:
        rows = fetch(ctx)
    finally:
        ctx.close()
    if as_json:
        _print_json(rows)
    else:
        _table(rows, columns)
    return 0


TICKET_COLUMNS = ("id", "status", "priority", "language", "topic", "requester", "assignee",
                  "first_response_due", "subject")  # fmt: skip


def cmd_tickets(args: argparse.Namespace, cfg: Config) -> int:
    if args.json:
        return _listing(cfg, lambda ctx: views.tickets(ctx, status=args.status), (), True)
    return _listing(
        cfg,
        lambda ctx: [views.short_times(t) for t in views.tickets(ctx, status=args.status)],
        TICKET_COLUMNS,
        False,
    )


def cmd_show(args: argparse.Namespace, cfg: Config) -> int:
    ctx = _context(cfg)
    try:
        ticket = views.show(ctx, args.id)
    finally:
        ctx.close()
    if ticket is None:
        print(f"mailbot show: no ticket {args.id}", file=sys.stderr)
        return 1
    if args.json:
        _print_json(ticket)
    else:
        print(views.show_text(ticket))
    return 0


def cmd_outbox(args: argparse.Namespace, cfg: Config) -> int:
    columns = ("id", "ticket", "template", "to", "status", "attempts", "last_error", "subject")
    return _listing(cfg, lambda ctx: views.outbox(ctx, status=args.status), columns, args.json)


def cmd_quarantine(args: argparse.Namespace, cfg: Config) -> int:
    columns = ("id", "received_at", "source", "attempts", "message_id", "reason")
    return _listing(cfg, lambda ctx: views.inbound(ctx, "quarantined"), columns, args.json)


def cmd_inbound(args: argparse.Namespace, cfg: Config) -> int:
    columns = ("id", "received_at", "source", "status", "ticket", "message_id", "reason")
    return _listing(cfg, lambda ctx: views.inbound(ctx, args.status), columns, args.json)


def cmd_retry(args: argparse.Namespace, cfg: Config) -> int:
    from mailbot.worker import process_pending

    ctx = _context(cfg)
    try:
        row = ctx.store.inbound.get(args.id)
        if row is None or row["status"] != "quarantined":
            print(f"mailbot retry: inbound {args.id} is not in quarantine", file=sys.stderr)
            return 1
        with ctx.store.atomic():
            ctx.store.inbound.update(args.id, {"status": "pending", "attempts": 0})
            ctx.store.events.add(
                "retry",
                "put back by an admin",
                at=datetime.now(UTC),
                inbound_id=args.id,
                actor="admin",
            )
        process_pending(ctx)
        after = ctx.store.inbound.get(args.id)
    finally:
        ctx.close()
    assert after is not None
    print(
        f"inbound {args.id}: {after['status']}"
        + (f" (ticket {after['ticket_id']})" if after["ticket_id"] else "")
        + (f": {after['reason']}" if after["status"] != "processed" and after["reason"] else "")
    )
    return 0 if after["status"] != "quarantined" else 1


def _write_out(data: bytes, out: Path | None) -> None:
    """Bytes to a file, or as they are to standard output."""
    if out is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        out.write_bytes(data)
        print(f"{out}: {len(data)} bytes", file=sys.stderr)


def cmd_attachment(args: argparse.Namespace, cfg: Config) -> int:
    ctx = _context(cfg)
    try:
        row = ctx.store.attachments.get(args.id)
        data = (cfg.mailbot.data_dir / row["path"]).read_bytes() if row else None
    except OSError as exc:
        print(f"mailbot attachment: {args.id}: {exc.strerror}", file=sys.stderr)
        return 1
    finally:
        ctx.close()
    if data is None:
        print(f"mailbot attachment: no attachment {args.id}", file=sys.stderr)
        return 1
    _write_out(data, args.out)
    return 0


def cmd_raw(args: argparse.Namespace, cfg: Config) -> int:
    ctx = _context(cfg)
    try:
        data = ctx.store.inbound.raw(args.id)
    finally:
        ctx.close()
    if data is None:
        print(f"mailbot raw: no inbound message {args.id}", file=sys.stderr)
        return 1
    if not data:
        print(f"mailbot raw: inbound {args.id} was removed (retention, erasure)", file=sys.stderr)
        return 1
    _write_out(data, args.out)
    return 0


def cmd_report(args: argparse.Namespace, cfg: Config) -> int:
    from mailbot import report

    ctx = _context(cfg)
    try:
        doc = report.build(ctx, datetime.now(UTC), since=args.since)
    finally:
        ctx.close()
    if args.json:
        _print_json(doc)
    else:
        print(report.render(doc))
    return 0


def cmd_escalations(args: argparse.Namespace, cfg: Config) -> int:
    from mailbot import escalations

    ctx = _context(cfg)
    try:
        now = datetime.now(UTC)
        if args.action == "reset":
            with ctx.store.atomic():
                forgiven = escalations.reset(ctx.store, args.address, now)
            if not forgiven:
                print(f"mailbot escalations: nothing to reset for {args.address}", file=sys.stderr)
                return 1
            print(f"{args.address.lower()}: {forgiven} urgent escalations reset")
            return 0
        rows = escalations.summary(ctx.store, ctx.cfg, now)
    finally:
        ctx.close()
    if args.json:
        _print_json(rows)
    else:
        _table(rows, ("customer", "manager", "count", "state", "last"))
    return 0


def cmd_customer(args: argparse.Namespace, cfg: Config) -> int:
    from mailbot import privacy

    ctx = _context(cfg)
    now = datetime.now(UTC)
    try:
        if args.action == "export":
            out = args.out or Path(f"customer-{privacy.normalise(args.address)}.zip")
            counts = privacy.export(ctx, args.address, out, now)
            print(f"{out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
            return 0
        held = privacy.forget(ctx, args.address, now, dry_run=args.dry_run)
    except privacy.Refused as exc:
        print(f"mailbot customer {args.action}: refused: {exc}", file=sys.stderr)
        return 1
    finally:
        ctx.close()
    verb = "would be erased" if args.dry_run else f"erased; now {held.pseudonym}"
    print(f"{held.address}: {verb}")
    for name, count in held.counts().items():
        print(f"  {name}: {count}")
    return 0


def cmd_purge(args: argparse.Namespace, cfg: Config) -> int:
    from mailbot import privacy

    if not cfg.retention.enabled:
        print("mailbot purge: [retention] keeps everything (nothing configured)")
        return 0
    ctx = _context(cfg)
    try:
        due = privacy.purge(ctx, datetime.now(UTC), dry_run=args.dry_run)
    finally:
        ctx.close()
    print("would remove:" if args.dry_run else "removed:")
    for name, count in due.counts().items():
        print(f"  {name}: {count}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailbot", description=__doc__)
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="config file (default: $MAILBOT_CONFIG, then ./config.toml)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    p = add("run", cmd_run, "run the daemon: sources, pipeline, outbox sender, scheduler")
    p.add_argument(
        "--once",
        action="store_true",
        help="process everything pending (inbound, due timers, outbox) and exit",
    )
    add("check-config", cmd_check_config, "validate config and templates")
    p = add(
        "import", cmd_import, "feed .eml files, mbox files or Maildir folders through the pipeline"
    )
    p.add_argument("--no-replies", action="store_true", help="send no acknowledgements")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p = add("tickets", cmd_tickets, "list tickets")
    p.add_argument("--status", choices=("open", "pending", "closed"))
    p.add_argument("--json", action="store_true")
    p = add("show", cmd_show, "one ticket with its messages and events")
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")
    p = add("outbox", cmd_outbox, "outgoing mail and its delivery state")
    p.add_argument("--status", choices=("pending", "sent", "failed"))
    p.add_argument("--json", action="store_true")
    p = add("quarantine", cmd_quarantine, "mail that failed processing")
    p.add_argument("--json", action="store_true")
    p = add("retry", cmd_retry, "put a quarantined message back through the pipeline")
    p.add_argument("id", type=int)
    p = add("inbound", cmd_inbound, "every stored inbound message and what became of it")
    p.add_argument(
        "--status", choices=("pending", "processed", "duplicate", "ignored", "quarantined")
    )
    p.add_argument("--json", action="store_true")
    p = add(
        "attachment",
        cmd_attachment,
        "the bytes of a stored attachment (its ID is in `show` and in agents' notifications)",
    )
    p.add_argument("id", type=int)
    p.add_argument("--out", type=Path, metavar="PATH", help="write to PATH, not standard output")
    p = add("raw", cmd_raw, "an inbound message exactly as it arrived (.eml)")
    p.add_argument("id", type=int)
    p.add_argument("--out", type=Path, metavar="PATH", help="write to PATH, not standard output")
    p = add("report", cmd_report, "SLA compliance: answered in time, breached, response times")
    p.add_argument(
        "--since",
        type=date.fromisoformat,
        metavar="DATE",
        help="only tickets received on or after DATE (YYYY-MM-DD)",
    )
    p.add_argument("--json", action="store_true")
    p = add(
        "escalations",
        cmd_escalations,
        "urgent escalations per customer in the last 30 days; `reset ADDRESS` forgives one",
    )
    p.add_argument("--json", action="store_true")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    reset = actions.add_parser(
        "reset", help="forgive a customer: the manager is paged for them again"
    )
    reset.add_argument("address", metavar="ADDRESS")
    p = add("customer", cmd_customer, "a customer's personal data: export it, or erase it")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = actions.add_parser("export", help="everything held about ADDRESS, as one ZIP archive")
    export.add_argument("address", metavar="ADDRESS")
    export.add_argument(
        "--out", type=Path, metavar="PATH", help="the archive (default: customer-ADDRESS.zip)"
    )
    forget = actions.add_parser("forget", help="erase ADDRESS's mail, texts, files and names")
    forget.add_argument("address", metavar="ADDRESS")
    forget.add_argument("--dry-run", action="store_true", help="list what would go, change nothing")
    p = add("purge", cmd_purge, "remove what is past [retention] now")
    p.add_argument("--dry-run", action="store_true", help="count what would go, change nothing")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = config_module.load(args.config)
    except ConfigError as exc:
        # check-config reports on stdout (it is its output); other commands on stderr.
        stream = sys.stdout if args.command == "check-config" else sys.stderr
        for problem in exc.problems:
            print(problem, file=stream)
        return 1
    return args.func(args, cfg)


if __name__ == "__main__":
    sys.exit(main())
