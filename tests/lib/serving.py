"""serving.py - how the test doubles of Notion (tests/emulator,
tests/replay, tests/hostile) run: stop cleanly on SIGTERM/SIGINT, publish
the port they listen on through a port file (written atomically, so a
reader never sees half a number), serve until stopped, and remove the port
file again if it is still theirs.

Standard library only.
"""

import os
import signal
import threading


def serve(servers, port_file=None, announce=None, poll_interval=0.25):
    """Serve servers[0] in this thread and the others in daemon threads
    until a signal stops them all. announce (the port file's text, e.g.
    "8080" or "8080 8081") defaults to servers[0]'s port. Returns 0."""
    main = servers[0]
    text = announce if announce is not None else str(main.server_address[1])

    def stop(_signum, _frame):
        for s in servers:
            threading.Thread(target=s.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for s in servers[1:]:
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": poll_interval},
                         daemon=True).start()
    if port_file:
        tmp = "%s.tmp.%d" % (port_file, os.getpid())
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, port_file)
    try:
        main.serve_forever(poll_interval=poll_interval)
    finally:
        for s in servers:
            s.server_close()
        if port_file:
            try:
                with open(port_file) as f:
                    if f.read().strip() == text:
                        os.unlink(port_file)
            except OSError:
                pass
    return 0
