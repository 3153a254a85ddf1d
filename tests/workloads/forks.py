"""A workload that holds 256 MiB and forks a child that sleeps without touching it, as Python does
for an instant before it execs Brian2's standalone binary or the compiler."""
import os
import time


def simulate(duration):
    block = bytearray(256 * 1024 * 1024)
    block[:: 4096] = b"x" * len(block[:: 4096])  # touch every page: resident, not just reserved
    pid = os.fork()
    if pid == 0:
        time.sleep(1.0)
        os._exit(0)
    os.waitpid(pid, 0)
    return {"pages": len(block) // 4096}
