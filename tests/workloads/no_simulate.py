"""A file that forgot the simulate function."""


def run_model(duration):
    return {}
