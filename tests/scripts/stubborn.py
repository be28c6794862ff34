"""Ignore SIGTERM and SIGINT; optionally double-fork a grandchild that does the same.

usage: stubborn.py PIDFILE [--double-fork]
Writes the pids of every process it made to PIDFILE (one per line), prints 'ready', then sleeps.
"""

import os
import signal
import sys
import time

pidfile = sys.argv[1]
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
pids = [os.getpid()]
if "--double-fork" in sys.argv:
    r, w = os.pipe()
    if os.fork() == 0:  # child
        os.setsid()  # leaves the driver's process group on purpose
        if os.fork() == 0:  # grandchild: orphaned when the child exits
            os.write(w, f"{os.getpid()}\n".encode())
            os.close(w)
            while True:
                time.sleep(1)
        os._exit(0)
    os.close(w)
    grandchild = int(os.read(r, 64).split()[0])
    pids.append(grandchild)
with open(pidfile + ".tmp", "w") as f:
    f.write("\n".join(map(str, pids)) + "\n")
os.replace(pidfile + ".tmp", pidfile)
print("value: 1", flush=True)
print("ready", flush=True)
while True:
    time.sleep(1)
