"""Print a value, then a line that makes ``^(a+)+$`` backtrack for ages, another value, then sleep.

usage: backtrack.py LENGTH SECONDS
The long line is LENGTH a's followed by '!' (so the pattern fails, after 2**LENGTH steps).
"""

import sys
import time

length, seconds = int(sys.argv[1]), float(sys.argv[2])
print("value: 1", flush=True)
print("a" * length + "!", flush=True)
print("value: 2", flush=True)
time.sleep(seconds)
