"""scenario.py - an integration file as named scenarios.

Each scenario is a function that makes its own state (a fresh PostgreSQL
database cloned from a migrated template, its own users and tokens), so
that one early failure spoils nothing else and any scenario runs alone
(Makefile.am sets PYTHONPATH; by hand, from the top of the tree):

    PYTHONPATH=tests/lib python3 tests/integration/test_x.py             # every scenario
    PYTHONPATH=tests/lib python3 tests/integration/test_x.py deletions   # one or several

Output stays TAP for automake's driver: a scenario that raises counts as
one failed assertion naming it, and the others still run.

Standard library only.
"""

import sys
import time
import traceback

from stack import clone_database  # noqa: F401  (re-exported: scenario.clone_database)

_shared = {}


def shared(pg, name, build):
    """A database `name` (a clone of pg's template) that build(db) fills
    once per run; returns (db, what build returned). Scenarios that need the
    same expensive starting state clone it (clone_database(pg, new,
    template=name)) instead of each building it again; run alone, a
    scenario builds it itself. A build that raises is retried by the next
    scenario that asks."""
    if name not in _shared:
        db = clone_database(pg, name)
        _shared[name] = (db, build(db))
    return _shared[name]


def on_own_database(template, prefix, name, fn, scope):
    """A (name, function) pair for run(): the function clones template into
    database prefix_name, calls fn(db) and then stops every stack left in
    scope (a list of objects with .stop(), emptied), also when fn fails; a
    stack that fails to stop is noted and the others still stop."""
    def scenario_run():
        db = clone_database(template, f"{prefix}_{name}")
        try:
            fn(db)
        finally:
            while scope:
                try:
                    scope.pop().stop()
                except Exception as exc:  # keep stopping the rest
                    print(f"# stopping a stack failed: {exc}", flush=True)
    return name, scenario_run


def run(tap, scenarios, argv=None, note=None, after=None):
    """Run the scenarios ((name, function) pairs, in order) named in argv
    (all when empty), then after() if given (checks over everything the
    chosen scenarios did, e.g. that no log holds a secret, or a table of
    what they measured), then close the TAP stream. An unknown name prints the usage and exits 2."""
    argv = sys.argv[1:] if argv is None else argv
    names = [n for n, _ in scenarios]
    unknown = [a for a in argv if a not in names]
    if unknown:
        print(f"usage: {sys.argv[0]} [{' | '.join(names)}]...", file=sys.stderr)
        sys.exit(2)
    say = note or (lambda msg: print(f"# {msg}", flush=True))
    started = time.monotonic()
    for name, fn in scenarios:
        if argv and name not in argv:
            continue
        say(f"--- {name}")
        start = time.monotonic()
        try:
            fn()
        except Exception:
            tap.ok(False, f"{name}: the scenario ran to its end", traceback.format_exc())
        say(f"{name} took {time.monotonic() - start:.1f}s")
    if after is not None:
        try:
            after()
        except Exception:
            tap.ok(False, "the checks after the scenarios ran to their end",
                   traceback.format_exc())
    say(f"runtime {time.monotonic() - started:.1f}s")
    tap.done()
