"""The `mailbot` command: run the daemon, import mail, look at tickets, outbox and quarantine."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from mailbot import attachments, views
from mailbot import config as config_module
from mailbot.config import Config, ConfigError
from mailbot.context import Context, DatabaseUnusable, open_context

Command = Callable[[argparse.Namespace, Config], int]


def _print_json(document: object) -> None:
    json.dump(document, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def _table(rows: list[dict], columns: Sequence[str], note: str | None = None) -> None:
    """A plain aligned table; long values are cut so one row stays one line.

    `note`: a key whose value, when set, is printed on its own indented line under the row.
    """
    cells = [[str(r.get(c) if r.get(c) is not None else "-")[:60] for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row, doc in zip(cells, rows, strict=True):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        if note and doc.get(note):
            print(f"    -> {doc[note]}")


def _context(cfg: Config) -> Context:
    """The store for a command; an unusable data_dir is a config error, not a traceback."""
    from mailbot.preflight import data_dir_problem

    problem = data_dir_problem(cfg.mailbot.data_dir)
    if problem:
        raise ConfigError([f"{cfg.path.name}: [mailbot] data_dir: {problem}"])
    return open_context(cfg)


def cmd_check_config(args: argparse.Namespace, cfg: Config) -> int:
    from mailbot import preflight

    problems = preflight.problems(cfg)
    for line in [*problems, *preflight.warnings(cfg)]:
        print(line)
    if problems:
        print(f"{cfg.path}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(
        f"{cfg.path}: OK ({len(cfg.agents)} agents, languages {', '.join(cfg.mailbot.languages)})"
    )
    return 0


def cmd_check_mailbox(args: argparse.Namespace, cfg: Config) -> int:
    from mailbot.mailbox_check import check

    return 0 if check(cfg) else 1


def cmd_run(args: argparse.Namespace, cfg: Config) -> int:
    from mailbot import daemon

    if args.once:
        ctx = open_context(cfg, new_database=args.new_database, check=True)
        try:
            summary = daemon.run_once(ctx)
        finally:
            ctx.close()
        print(summary)
        return 0
    return daemon.serve(cfg, args.new_database)


def cmd_import(args: argparse.Namespace, cfg: Config) -> int:
    from mailbot.sources.files import import_paths
    from mailbot.worker import process_pending

    if args.history or args.sent or args.close_before:
        return _import_history(args, cfg)
    ctx = _context(cfg)
    try:
        missing = [p for p in args.paths if not p.exists()]
        if missing:
            print(f"mailbot import: no such file: {', '.join(map(str, missing))}", file=sys.stderr)
            return 2
        new, known = import_paths(ctx.store, args.paths, no_replies=args.no_replies)
        counts = process_pending(ctx)
    except KeyboardInterrupt:
        # Each message is committed on its own: what is stored stays, and is known next time.
        print("mailbot import: interrupted; run again to continue", file=sys.stderr)
        return 130
    finally:
        ctx.close()
    print(
        f"imported {new} new, {known} already known; processed {counts.processed},"
        f" ignored {counts.ignored}, quarantined {counts.quarantined}"
    )
    return 0


INTERRUPTED = "interrupted; run again to continue"


def _import_history(args: argparse.Namespace, cfg: Config) -> int:
    """`import --history`: the mailbox's old mail at its own time; nothing sent (#13)."""
    from mailbot.sources.history import IMAP_PREFIX, import_history

    if not args.history:
        print("mailbot import: --sent and --close-before need --history", file=sys.stderr)
        return 2
    sent = args.sent or []
    missing = [
        p for p in (*args.paths, *sent) if not str(p).startswith(IMAP_PREFIX) and not p.exists()
    ]
    if missing:
        print(f"mailbot import: no such file: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    if any(str(p).startswith(IMAP_PREFIX) for p in (*args.paths, *sent)) and not (
        cfg.imap.host and cfg.imap.username
    ):
        print(
            "mailbot import: imap:FOLDER reads the configured mailbox;"
            " [inbound.imap] host and username are not set",
            file=sys.stderr,
        )
        return 2
    ctx = _context(cfg)
    bar = _ProgressBar() if sys.stderr.isatty() else None
    try:
        summary = import_history(
            ctx,
            list(args.paths),
            sent,
            close_before=args.close_before,
            progress=bar.show if bar else lambda phase, done, total: None,
        )
    except KeyboardInterrupt:
        if bar:
            bar.end()
        print(INTERRUPTED, file=sys.stderr)
        return 130
    finally:
        ctx.close()
    if bar:
        bar.end()
    print(summary.line())
    return 0


class _ProgressBar:
    """One line on the terminal, redrawn in place: phase, bar (when the total is known), count."""

    WIDTH = 30

    def __init__(self) -> None:
        self.drawn = False

    def show(self, phase: str, done: int, total: int) -> None:
        if total:
            filled = self.WIDTH * min(done, total) // total
            bar = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total}"
        else:
            bar = str(done)
        sys.stderr.write(f"\r{phase} {bar}\x1b[K")
        sys.stderr.flush()
        self.drawn = True

    def end(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.drawn = False


def _listing(
    cfg: Config,
    fetch: Callable[[Context], list[dict]],
    columns: Sequence[str],
    as_json: bool,
    note: str | None = None,
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
        _table(rows, columns, note)
    return 0


TICKET_COLUMNS = ("id", "status", "priority", "language", "topic", "requester", "assignee",
                  "first_response_due", "subject")  # fmt: skip


def cmd_tickets(args: argparse.Namespace, cfg: Config) -> int:
    from mailbot.pipeline.commands import find_agent

    assignee = topic = None
    if args.assignee:
        agent = find_agent(cfg, args.assignee)
        assignee = agent.email if agent else args.assignee if "@" in args.assignee else None
        if assignee is None:
            names = ", ".join(a.name for a in cfg.agents)
            print(f"mailbot tickets: no agent {args.assignee!r} (agents: {names})", file=sys.stderr)
            return 2
    if args.topic:
        found = cfg.find_topic(args.topic)
        if found is None:
            names = ", ".join(t.name for t in cfg.topics)
            print(f"mailbot tickets: no topic {args.topic!r} (topics: {names})", file=sys.stderr)
            return 2
        topic = found.name

    def fetch(ctx: Context) -> list[dict]:
        rows = views.tickets(
            ctx,
            status=args.status,
            assignee=assignee,
            topic=topic,
            overdue_at=datetime.now(UTC) if args.overdue else None,
            limit=args.limit,
        )
        return rows if args.json else [views.short_times(t) for t in rows]

    several = len(cfg.mailboxes) > 1  # which support address, when there are several
    columns = (*TICKET_COLUMNS[:-1], "mailbox", TICKET_COLUMNS[-1]) if several else TICKET_COLUMNS
    return _listing(cfg, fetch, columns, args.json)


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
    if args.action in ("retry", "cancel"):
        return _outbox_action(args, cfg)
    columns = ("id", "ticket", "template", "to", "status", "attempts", "last_error", "subject")

    def fetch(ctx: Context) -> list[dict]:
        return views.outbox(ctx, status=args.status)

    return _listing(cfg, fetch, columns, args.json, note="hint")


def _outbox_action(args: argparse.Namespace, cfg: Config) -> int:
    """`outbox retry ID|--failed` and `outbox cancel ID`: requeue or drop outgoing mail."""
    if args.action == "retry" and (args.id is None) == (not args.failed):
        print("mailbot outbox retry: give an ID or --failed (not both)", file=sys.stderr)
        return 2
    ctx = _context(cfg)
    now = datetime.now(UTC)
    outbox, done, refused = ctx.store.outbox, [], ""
    try:
        with ctx.store.atomic():
            for rid in outbox.ids("failed") if args.failed else [args.id]:
                row = outbox.get(rid)
                if args.action == "retry":
                    changed = row is not None and outbox.requeue(rid, now)
                else:
                    changed = row is not None and outbox.cancel(rid)
                if row is None or not changed:
                    refused = f"it is {row['status']}" if row is not None else "no such message"
                    continue
                done.append(rid)
                what = "queued again" if args.action == "retry" else "cancelled"
                ctx.store.events.add(
                    f"outbox-{args.action}",
                    f"{row['template']} to {row['to_addr']} (outbox {rid}) {what} by an admin",
                    at=now,
                    ticket_id=row["ticket_id"],
                    actor="admin",
                )
    finally:
        ctx.close()
    if not args.failed and not done:
        print(f"mailbot outbox {args.action}: outbox {args.id}: {refused}", file=sys.stderr)
        return 1
    if args.action == "cancel":
        print(f"outbox {args.id}: cancelled, it will not be sent")
    else:
        print(
            f"{len(done)} message{'s' * (len(done) != 1)} queued again"
            + (f" ({', '.join(map(str, done))})" if done else "")
            + "; a running mailbot sends them within seconds, or run `mailbot run --once`"
        )
    return 0


def _inbound_rows(ctx: Context, status: str | None, as_json: bool) -> list[dict]:
    rows = views.inbound(ctx, status)
    if not as_json:  # the table cuts at 60 characters: keep a file's name, not its directory
        for row in rows:
            if len(row["origin"]) > 60:
                row["origin"] = "…" + row["origin"][-59:]
    return rows


def cmd_quarantine(args: argparse.Namespace, cfg: Config) -> int:
    columns = ("id", "received_at", "origin", "attempts", "message_id", "reason")
    fetch = lambda ctx: _inbound_rows(ctx, "quarantined", args.json)  # noqa: E731
    return _listing(cfg, fetch, columns, args.json)


def cmd_inbound(args: argparse.Namespace, cfg: Config) -> int:
    columns = ("id", "received_at", "origin", "status", "ticket", "message_id", "reason")
    fetch = lambda ctx: _inbound_rows(ctx, args.status, args.json)  # noqa: E731
    return _listing(cfg, fetch, columns, args.json)


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
    if data is None or row is None:
        print(f"mailbot attachment: no attachment {args.id}", file=sys.stderr)
        return 1
    out = args.out
    if out is not None and out.is_dir():
        # Into the directory under the sanitised name the agents saw, never outside it and
        # never over a file (or a link) already there.
        out = out / attachments.safe_filename(row["filename"])
        try:
            with out.open("xb") as file:
                file.write(data)
        except OSError as exc:
            print(f"mailbot attachment: {out}: {exc.strerror}", file=sys.stderr)
            return 1
        print(f"{out}: {len(data)} bytes", file=sys.stderr)
        return 0
    _write_out(data, out)
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


def _document(
    args: argparse.Namespace,
    cfg: Config,
    build: Callable[[Context, datetime], dict],
    render: Callable[[dict], str],
) -> int:
    """A figures document read from the database now: JSON with --json, else as text."""
    ctx = _context(cfg)
    try:
        doc = build(ctx, datetime.now(UTC))
    finally:
        ctx.close()
    if args.json:
        _print_json(doc)
    else:
        print(render(doc))
    return 0


def cmd_report(args: argparse.Namespace, cfg: Config) -> int:
    from mailbot import report

    return _document(
        args, cfg, lambda ctx, now: report.build(ctx, now, since=args.since), report.render
    )


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


def cmd_stats(args: argparse.Namespace, cfg: Config) -> int:
    from mailbot import stats

    return _document(args, cfg, lambda ctx, now: stats.build(ctx.store, now), stats.render)


def _backup_command(name: str, run: Callable[[], object]) -> int:
    """Print what a backup command did and any problems; exit 1 when there were problems."""
    from mailbot.backup import BackupError, Outcome

    try:
        outcome = run()
    except BackupError as exc:
        print(f"mailbot {name}: {exc}", file=sys.stderr)
        return 1
    assert isinstance(outcome, Outcome)
    for line in outcome.lines:
        print(line)
    for problem in outcome.problems:
        print(f"mailbot {name}: {problem}", file=sys.stderr)
    return 1 if outcome.problems else 0


def cmd_backup(args: argparse.Namespace, cfg: Config) -> int:
    from mailbot import backup

    return _backup_command("backup", lambda: backup.backup(cfg, args.path))


def cmd_restore(args: argparse.Namespace, cfg: Config) -> int:
    from mailbot import backup

    return _backup_command("restore", lambda: backup.restore(cfg, args.path, force=args.force))


def cmd_verify(args: argparse.Namespace, cfg: Config) -> int:
    from mailbot import backup

    return _backup_command("verify", lambda: backup.verify(cfg))


ROW_ID_MAX = 2**63 - 1  # SQLite's largest integer


def row_id(text: str) -> int:
    """An ID argument: a whole number SQLite can hold, else a clear usage error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value <= ROW_ID_MAX:
        raise argparse.ArgumentTypeError(f"{text} is out of range (1 to {ROW_ID_MAX})")
    return value


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("mailbot")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


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
    if not held.wal_emptied:
        print(
            "mailbot customer forget: the running daemon kept the database's write-ahead log"
            " from being emptied; old copies stay in it until its next checkpoint. Run the same"
            " command again when the daemon is idle (it finds nothing more to erase and empties"
            " the log).",
            file=sys.stderr,
        )
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
    config_help = "config file (default: $MAILBOT_CONFIG, then ./config.toml)"
    parser.add_argument("--config", type=Path, default=None, help=config_help)
    parser.add_argument("--version", action="version", version=f"mailbot {version()}")
    # `--config` also after the command (`mailbot tickets --config …`); SUPPRESS keeps one
    # given before the command when it is not repeated.
    after = argparse.ArgumentParser(add_help=False)
    after.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=config_help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[after])
        p.set_defaults(func=func)
        return p

    p = add("run", cmd_run, "run the daemon: sources, pipeline, outbox sender, scheduler")
    p.add_argument(
        "--once",
        action="store_true",
        help="process everything pending (inbound, due timers, outbox) and exit",
    )
    p.add_argument(
        "--new-database",
        action="store_true",
        help="start with a new, empty database where the old one is missing or empty"
        " (tokens in mail sent before no longer act)",
    )
    add("check-config", cmd_check_config, "validate config and templates")
    add(
        "check-mailbox",
        cmd_check_mailbox,
        "sign in to IMAP and SMTP as configured (password or OAuth2), one line per step",
    )
    p = add(
        "import", cmd_import, "feed .eml files, mbox files or Maildir folders through the pipeline"
    )
    p.add_argument("--no-replies", action="store_true", help="send no acknowledgements")
    p.add_argument(
        "--history",
        action="store_true",
        help="move in an existing mailbox: nothing sent, no past timers, tickets at the mail's"
        " own time (PATH may be imap:FOLDER of the configured mailbox)",
    )
    p.add_argument(
        "--sent",
        action="append",
        type=Path,
        metavar="PATH",
        help="with --history: the support address's sent mail, whose answers count as first"
        " responses (repeat for several)",
    )
    p.add_argument(
        "--close-before",
        type=date.fromisoformat,
        metavar="DATE",
        help="with --history: close imported tickets with no mail since before DATE (YYYY-MM-DD)",
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p = add("tickets", cmd_tickets, "list tickets")
    p.add_argument("--status", choices=("open", "pending", "closed"))
    p.add_argument(
        "--overdue", action="store_true", help="only tickets past their first-response due time"
    )
    p.add_argument("--assignee", metavar="AGENT", help="assigned to AGENT (email or name)")
    p.add_argument("--topic", metavar="TOPIC", help="of TOPIC (any of its names)")
    p.add_argument("--limit", type=row_id, metavar="N", help="at most N tickets")
    p.add_argument("--json", action="store_true")
    p = add("show", cmd_show, "one ticket with its messages and events")
    p.add_argument("id", type=row_id)
    p.add_argument("--json", action="store_true")
    p = add(
        "outbox",
        cmd_outbox,
        "outgoing mail and its delivery state; `retry ID|--failed` and `cancel ID` act on it",
    )
    p.add_argument("--status", choices=("pending", "sent", "failed", "cancelled"))
    p.add_argument("--json", action="store_true")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    retry = actions.add_parser("retry", help="send failed (or waiting) mail again, now")
    retry.add_argument("id", type=row_id, nargs="?", metavar="ID")
    retry.add_argument("--failed", action="store_true", help="every failed message")
    cancel = actions.add_parser("cancel", help="drop a message that was not sent")
    cancel.add_argument("id", type=row_id, metavar="ID")
    cancel.set_defaults(failed=False)
    p = add("quarantine", cmd_quarantine, "mail that failed processing")
    p.add_argument("--json", action="store_true")
    p = add("retry", cmd_retry, "put a quarantined message back through the pipeline")
    p.add_argument("id", type=row_id)
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
    p.add_argument("id", type=row_id)
    p.add_argument(
        "--out",
        type=Path,
        metavar="PATH",
        help="write to PATH, not standard output (a directory: under the file's shown name)",
    )
    p = add("raw", cmd_raw, "an inbound message exactly as it arrived (.eml)")
    p.add_argument("id", type=row_id)
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
    p = add("stats", cmd_stats, "the figures of the metrics endpoint, read from the database")
    p.add_argument("--json", action="store_true")
    p = add("backup", cmd_backup, "consistent copy of database, attachments and secret (online)")
    p.add_argument("path", type=Path, metavar="PATH", help="a new (or empty) directory")
    p = add("restore", cmd_restore, "put a backup in place (the daemon must be stopped)")
    p.add_argument("path", type=Path, metavar="PATH")
    p.add_argument("--force", action="store_true", help="replace an existing database")
    add("verify", cmd_verify, "database integrity; raw mail and attachments against SHA-256")
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


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = config_module.load(args.config)
        from mailbot import logs

        # The daemon logs to stdout (journald): `run` sets that up; other commands log to
        # stderr, so their output (--json) stays clean.
        logs.setup(cfg, stream="stderr")
        return args.func(args, cfg)
    except DatabaseUnusable as exc:
        print(f"mailbot: {exc}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        # check-config reports on stdout (it is its output); other commands on stderr.
        stream = sys.stdout if args.command == "check-config" else sys.stderr
        for problem in exc.problems:
            print(problem, file=stream)
        if args.command == "check-config":
            path = Path(args.config or config_module.default_path()).absolute()
            print(f"{path}: {len(exc.problems)} problem(s)", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _run(argv)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        # `mailbot tickets | head`: the reader has what it wanted. Quiet, as `yes | head` is;
        # stdout goes to /dev/null so the interpreter's last flush does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13  # killed by SIGPIPE, as shells report it
    except KeyboardInterrupt:
        print("mailbot: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
