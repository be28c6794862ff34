"""Print the lines of a file given as argv[1] (raw bytes), then exit with argv[2] (default 0)."""

import sys

with open(sys.argv[1], "rb") as f:
    sys.stdout.buffer.write(f.read())
sys.stdout.flush()
sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
