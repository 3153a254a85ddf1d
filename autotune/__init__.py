"""brian2-autotune: calibrate a host once, then run Brian2 in its fastest valid configuration."""
__version__ = "0.1.0"
