"""dleff: deep-learning training efficiency, measured on your own machine."""

__version__ = "0.1.0"
