"""benchlib.py - what every benchmark of `make bench` starts with: its
command line (--builddir and --srcdir, as Makefile.am passes them, plus the
benchmark's own options) and the test harness on the import path.

    import benchlib
    args = benchlib.arguments(("--pages", int, 20000))
    import harness as h

Standard library only.
"""
import argparse
import os
import sys


def arguments(*options):
    """Parse --builddir, --srcdir and options ((flag, type, default) each),
    export top_srcdir/top_builddir for the harness and put tests/lib on
    sys.path. Returns the parsed arguments."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--builddir", default=".")
    parser.add_argument("--srcdir", default=".")
    for flag, kind, default in options:
        parser.add_argument(flag, type=kind, default=default)
    args = parser.parse_args()
    os.environ.setdefault("top_srcdir", os.path.abspath(args.srcdir))
    os.environ.setdefault("top_builddir", os.path.abspath(args.builddir))
    sys.path.insert(0, os.path.join(os.environ["top_srcdir"], "tests", "lib"))
    return args
