"""Kaggle ARC Prize submissions: `python -m submissions.make`, the command line over `arc_trm.kaggle`
(see submissions/make.py and the README, section Kaggle)."""
