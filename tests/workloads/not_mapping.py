"""A workload whose simulate returns a list instead of a mapping."""


def simulate(duration):
    return [1, 2, 3]
