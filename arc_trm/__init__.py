"""arc_trm: train, predict with, vote over and score the Tiny Recursive Model on ARC-AGI."""

__version__ = "0.1.0"
