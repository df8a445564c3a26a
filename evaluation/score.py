"""`python -m evaluation.score`: score a submission the way ARC Prize and Kaggle do.

Run from the repository root:

    python -m evaluation.score submission.json --split arc-agi-1/evaluation
    python -m evaluation.score submission.json --solutions arc-agi_evaluation_solutions.json \\
        --json report.json --render pictures/
    python -m evaluation.score predictions.csv --solutions test.csv --track sudoku

`--solutions` takes a folder of task files, one task file, a Kaggle challenges file (its
`*_solutions.json` beside it is picked up) or a Kaggle solutions file (its `*_challenges.json`
beside it is picked up; without one the outputs are scored but cannot be drawn). `--split` takes a
named split (see `arc_trm.splits`). Prints a short table; `--json` writes the full report,
`--render DIR` one PNG per task not fully solved. Bad input: one `error:` line, exit code 2, and no
report file. The scoring itself is the track's (`arc_trm.tracks`: ARC's is `arc_trm.scoring`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from arc_trm.errors import ArgumentParser, UserError, exit_on_user_error, nonempty_path
from arc_trm.io import refuse_output_on_input
from arc_trm.scoring import truth_inputs
from arc_trm.splits import SPLITS
from arc_trm.tracks import TRACKS, track


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m evaluation.score", description=__doc__.split("\n\n")[0])
    parser.add_argument("submission", type=Path, help="submission.json (Kaggle format), or track predictions")
    truth = parser.add_mutually_exclusive_group(required=True)
    truth.add_argument("--solutions", type=Path, metavar="PATH",
                       help="task folder, task file, Kaggle challenges file or Kaggle solutions file")
    truth.add_argument("--split", metavar="NAME", help=f"named split: {', '.join(SPLITS)}")
    parser.add_argument("--json", type=nonempty_path, metavar="REPORT", help="write the full report here (atomically)")
    parser.add_argument("--render", type=nonempty_path, metavar="DIR", help="write one PNG per task not fully solved")
    parser.add_argument("--track", choices=list(TRACKS), default="arc", help="what is scored (default: arc)")
    return parser


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    inputs = {"the submission": args.submission, **truth_inputs(args.solutions, args.split)}
    if args.json is not None and args.render is not None and args.json.resolve() == args.render.resolve():
        raise UserError(f"--json {args.json} and --render {args.render}: the same path; the report is a file, the pictures a folder")
    for option in ("--json", "--render"):
        output = getattr(args, option[2:])
        if output is not None:
            refuse_output_on_input(output, inputs, option=option)
    # an unwritable --json: one line at the edge
    print(track(args.track).score_files(args.submission, args.solutions, args.split, args.json, args.render))
    return 0


if __name__ == "__main__":
    sys.exit(main())
