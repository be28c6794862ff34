"""Hold MIB mebibytes resident for SECONDS, optionally inside a grandchild.

usage: hold_memory.py MIB SECONDS [--grandchild]
Prints 'holding' once the memory is touched.
"""

import subprocess
import sys
import time


def hold(mib: int, seconds: float) -> None:
    block = bytearray(mib << 20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    print("holding", flush=True)
    time.sleep(seconds)
    del block


if __name__ == "__main__":
    mib, seconds = int(sys.argv[1]), float(sys.argv[2])
    if "--grandchild" in sys.argv:
        # this process is the child; the holder is its child (the driver's grandchild)
        code = subprocess.call([sys.executable, __file__, str(mib), str(seconds)])
        print("child done", flush=True)
        sys.exit(code)
    hold(mib, seconds)
    print(f"speed: {mib}", flush=True)
