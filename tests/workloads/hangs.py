"""A workload that never finishes."""
import time


def simulate(duration):
    while True:
        time.sleep(0.1)
