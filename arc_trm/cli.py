"""`arc-trm COMMAND [ARGS...]`: one console script for every entry point, beside `python -m MODULE`.

    arc-trm train preset=arc1_8x8_cpu        # = python -m arc_trm.train preset=arc1_8x8_cpu
    arc-trm score submission.json --split arc-agi-1/evaluation

Each command runs its module's `main` with the remaining arguments, so arguments, help and exit codes
are the module's own. This is the command line, not the library: it is the one place under arc_trm/
that names the command-line packages (evaluation, submissions), by module name, imported on use.
"""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("arc_trm.train", "train TRM (one process; `accelerate launch -m arc_trm.train` for several)"),
    "predict": ("arc_trm.predict", "predict test inputs with test-time augmentation"),
    "vote": ("arc_trm.vote", "vote candidates into attempts and compare policies"),
    "score": ("evaluation.score", "score a submission as ARC Prize does (and Sudoku / Maze predictions)"),
    "submit": ("submissions.make", "make a Kaggle submission.json for unseen tasks"),
    "splits": ("arc_trm.splits", "write a bundled split as a Kaggle challenges + solutions pair"),
    "build-arc": ("arc_trm.data.arc", "build an ARC training data folder"),
    "sudoku": ("arc_trm.data.sudoku", "generate, rate and convert Sudoku puzzles"),
    "maze": ("arc_trm.data.maze", "generate Maze-Hard style mazes"),
    "slim-export": ("arc_trm.slim_export", "export a model with only the puzzle ids prediction needs"),
    "import-reference": ("arc_trm.import_reference", "import a checkpoint of the reference code"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: arc-trm COMMAND [ARGS...]   (arc-trm COMMAND --help for a command's arguments)", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {text}  (python -m {module})" for name, (module, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] not in COMMANDS:
        print(f"error: unknown command '{argv[0]}' (known: {', '.join(COMMANDS)}; see arc-trm --help)", file=sys.stderr)
        return 2
    module, _ = COMMANDS[argv[0]]
    sys.argv = [f"arc-trm {argv[0]}", *argv[1:]]
    return importlib.import_module(module).main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
