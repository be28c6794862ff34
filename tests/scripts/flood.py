"""Print MIB mebibytes of numbered lines ('value: N'), then sleep SECONDS (argv[1], argv[2])."""

import sys
import time

mib, seconds = float(sys.argv[1]), float(sys.argv[2])
line = b"value: %d padding padding padding padding padding padding padding padding\n"
out = sys.stdout.buffer
written = i = 0
while written < mib * (1 << 20):
    chunk = b"".join(line % (i + k) for k in range(1000))
    out.write(chunk)
    written += len(chunk)
    i += 1000
out.flush()
print(f"done {i}", flush=True)
time.sleep(seconds)
