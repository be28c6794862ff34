"""Print a value, close stdout and stderr, then keep running for SECONDS (argv[1])."""

import os
import sys
import time

print("value: 7", flush=True)
os.close(1)
os.close(2)
time.sleep(float(sys.argv[1]))
