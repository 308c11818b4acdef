"""Architecture figures: the modules and functions one message visits, who writes, import cycles.

`python -m bench.walk [--urgent] [ROOT]` traces one new customer message (after a warm-up one)
from the inbound table to delivery with sys.setprofile, then reads the static import graph of
ROOT/mailbot (lazy imports inside functions included). ROOT defaults to this checkout; give an
older checkout (with PYTHONPATH=ROOT) to compare the shape before and after a change.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

STORE = ("db", "store")
WRITES = {
    "insert", "update", "execute", "add", "add_event", "store_inbound", "cancel", "cancel_one",
    "claim", "start", "end", "set", "mark_undeliverable", "mark_paged", "reset", "record_failure",
}  # fmt: skip


def trace(root: Path, urgent: bool) -> None:
    sys.path.insert(0, str(root))
    from mailbot import config as config_module
    from mailbot import outbox, worker
    from mailbot.context import open_context
    from mailbot.intake import accept
    from tests.helpers import make_mail, write_config

    ctx = open_context(config_module.load(write_config(Path(tempfile.mkdtemp()))))
    now = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    warm = make_mail(sender="Ewa Nowak <ewa@przyklad.pl>", subject="PILNE: awaria linii")
    with ctx.store.atomic():
        accept(ctx.store, warm, source="smtp", now=now)
    worker.process_pending(ctx, now)  # imports, templates and caches warm
    if urgent:
        raw = make_mail(sender="Ewa Nowak <ewa2@przyklad.pl>", subject="PILNE: linia stoi")
    else:
        raw = make_mail(sender="Jan Kowalski <jan@klient.pl>", subject="Problem z dostawą")
    with ctx.store.atomic():
        accept(ctx.store, raw, source="smtp", now=now)

    calls: list[tuple[str, str]] = []
    stack: list[tuple[str, str]] = []
    trips: list[str] = []
    edges: set[tuple[str, str]] = set()
    writers: set[str] = set()

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        filename = frame.f_code.co_filename
        if "/mailbot/" not in filename or str(root) not in filename:
            return
        module = filename.split("/mailbot/", 1)[1].removesuffix(".py").replace("/", ".")
        name = frame.f_code.co_qualname
        if event == "call" and not name.startswith("<"):
            calls.append((module, name))
            caller = next((m for m, _ in reversed(stack) if m != module), None)
            if caller:
                edges.add((caller, module))
            below = [m for m, _ in stack]
            if stack and stack[-1][0] != module and module in below:
                trips.append(" → ".join(dict.fromkeys([*below[below.index(module) :], module])))
            if module.startswith(STORE) and name.split(".")[-1] in WRITES:
                writers.add(next((m for m, _ in reversed(stack) if not m.startswith(STORE)), "?"))
            stack.append((module, name))
        elif event == "return" and stack and stack[-1] == (module, name):
            stack.pop()

    sys.setprofile(profile)
    worker.process_pending(ctx, now)
    outbox.deliver_due(ctx, outbox.make_transport(ctx.cfg), now)
    sys.setprofile(None)
    modules = list(dict.fromkeys(m for m, _ in calls))
    print(f"{len(calls)} calls, {len(set(calls))} distinct functions in {len(modules)} modules")
    print("modules in order of first visit:", ", ".join(modules))
    print("modules whose code calls a store write:", ", ".join(sorted(writers)))
    print(f"calls back into a module below on the stack (A → B → A): {len(trips)}")
    for path, count in Counter(trips).most_common():
        print(f"  {count:3d} × {path}")
    print(f"module call graph: {len(edges)} edges")


def imports(root: Path) -> None:
    package = root / "mailbot"
    modules = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        modules[".".join(parts).removesuffix(".__init__")] = path
    edges: set[tuple[str, str]] = set()
    lazy: set[tuple[str, str]] = set()
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        inside = {
            id(node)
            for fn in ast.walk(tree)
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
            for node in ast.walk(fn)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                if target in modules and target != name:
                    edges.add((name, target))
                    if id(node) in inside:
                        lazy.add((name, target))

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            here = todo.pop()
            for a, b in edges:
                if a == here and b not in seen:
                    seen.add(b)
                    todo.append(b)
        return seen

    reachable = {name: reach(name) for name in modules}
    cycles = [
        (a, b)
        for a, b in itertools.combinations(sorted(modules), 2)
        if b in reachable[a] and a in reachable[b]
        and not (b.startswith(a + ".") or a.startswith(b + "."))  # a package and its own modules
    ]  # fmt: skip
    print(f"{len(modules)} modules, {len(edges)} import edges, {len(lazy)} inside functions:")
    print("  " + ", ".join(f"{a}→{b}" for a, b in sorted(lazy)))
    print(f"module pairs that import each other, directly or through others: {len(cycles)}")
    for a, b in cycles:
        print(f"  {a} ⇄ {b}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=Path(__file__).parents[1])
    parser.add_argument("--urgent", action="store_true", help="an urgent managed customer's mail")
    args = parser.parse_args()
    root = args.root.resolve()
    trace(root, args.urgent)
    imports(root)


if __name__ == "__main__":
    main()
