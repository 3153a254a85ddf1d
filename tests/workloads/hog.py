"""A workload that grabs far more memory than it should."""
import time


def simulate(duration):
    blocks = []
    for _ in range(64):
        blocks.append(bytearray(64 * 1024 * 1024))
        time.sleep(0.05)
    return {"blocks": len(blocks)}
