"""benchlib.py - what every benchmark of `make bench` starts with: its
command line (--builddir and --srcdir, as Makefile.am passes them, plus the
benchmark's own options) and the test harness on the import path.

    import benchlib
    args = benchlib.arguments(("--pages", int, 20000))
    import harness as h

Standard library only.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time


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


def real_cli(env, fallback):
    """The notion-sync binary itself, not the build tree's libtool wrapper
    (whose shell would be measured too): sets env's LD_LIBRARY_PATH for it.
    fallback (the wrapper) when there is no built binary."""
    cli = os.path.join(os.environ["top_builddir"], "cli", ".libs", "notion-sync")
    if not os.path.exists(cli):
        return fallback
    libdir = os.path.join(os.environ["top_builddir"], "lib", ".libs")
    env["LD_LIBRARY_PATH"] = libdir + ":" + env.get("LD_LIBRARY_PATH", "")
    return cli


def _high_water_mib(pid):
    """VmHWM of pid (the peak RSS of the program it runs now), or 0."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def measured_run(argv, env):
    """Run argv (stderr discarded). Returns (its stdout, wall seconds, CPU
    seconds, peak RSS in MiB); RuntimeError when it exits non-zero.

    CPU comes from wait4 (the child's own, not the sum of all children).
    Peak RSS does not: ru_maxrss also counts the child's life before exec,
    a copy of this Python process. It is the child's VmHWM (the high-water
    mark of the program it runs, only growing) read every 20 ms until it
    exits, so at most its last 20 ms can add unseen."""
    start = time.monotonic()
    out = []
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()))
    reader.start()
    peak = 0.0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, _high_water_mib(proc.pid))
        time.sleep(0.02)
    proc.returncode = status  # reaped here, not by Popen
    reader.join()
    proc.stdout.close()
    wall = time.monotonic() - start
    text = out[0] if out else b""
    if status:
        raise RuntimeError(f"{argv[0]} failed: {text[:300]!r}")
    return text, wall, usage.ru_utime + usage.ru_stime, peak


def measured_sync(cli, argv, env):
    """measured_run of notion-sync argv; (its JSON answer, wall, CPU, RSS)."""
    out, wall, cpu, rss = measured_run([cli] + argv, env)
    answer = json.loads(out)
    if not answer.get("success"):
        raise RuntimeError(f"{' '.join(argv)}: sync failed: {out[:300]!r}")
    return answer, wall, cpu, rss
