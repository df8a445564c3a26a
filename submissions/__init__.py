"""Kaggle ARC Prize submissions: `python -m submissions.make` (see submissions/make.py and the README, section Kaggle)."""
