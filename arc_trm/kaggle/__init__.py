"""The Kaggle ARC Prize side of the library: the submission format (`submission`: two attempts per test
input, fallbacks, validation, atomic write) and the flow behind `python -m submissions.make` (`flow`: its
phases; `provenance`: what each answer of the file rests on; `runners`: in process or under `accelerate
launch`, out-of-memory retries; `clock`: the time budget)."""
