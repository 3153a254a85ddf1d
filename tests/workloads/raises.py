"""A workload whose simulate raises."""


def simulate(duration):
    raise ValueError("the model's parameters are wrong")
