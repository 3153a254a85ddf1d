"""A workload that crashes the interpreter."""
import os
import signal


def simulate(duration):
    os.kill(os.getpid(), signal.SIGSEGV)
