"""User-facing errors and the one place that turns them into a clean exit.

Every problem a user can cause (a bad file, a bad config value) raises `UserError` with one line
that names the file or key and what is wrong. Command-line entry points wrap `main` in
`exit_on_user_error`, which prints that line to stderr and exits with code 2: never a traceback.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from pathlib import Path
from typing import Callable, TypeVar

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A problem with the user's input, reported as one line and exit code 2."""


class DataError(UserError):
    """A data file is missing, unreadable or does not follow its format."""


class ConfigError(UserError):
    """A configuration key or value is unknown or invalid."""


F = TypeVar("F", bound=Callable[..., object])


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage mistakes are a `UserError`: the same `error:` line and exit 2 as bad data,
    not argparse's `prog: error:` form. Every command-line entry point uses it."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see --help)")


def nonempty_path(text: str) -> Path:
    """An argparse `type` for output paths: an empty one would silently mean the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path (it would mean the current folder); name a folder")
    return Path(text)


def check_options(parser: argparse.ArgumentParser, args: argparse.Namespace, rules: dict[str, tuple[bool, str]]) -> None:
    """`rules` maps an option (`--n`) to (holds, what is allowed); the first that does not hold is the
    usage error, naming that option and its value."""
    for option, (holds, allowed) in rules.items():
        if not holds:
            parser.error(f"{option} {getattr(args, option.lstrip('-').replace('-', '_'))}: must be {allowed}")


MAX_LINE = 600
"""An error line is cut to this many characters (long paths fit): a message quoting a whole input line stays readable."""


def one_line(message: str) -> str:
    """`message` on one line of at most MAX_LINE characters."""
    text = " ".join(str(message).split())
    return text if len(text) <= MAX_LINE else text[: MAX_LINE - 3] + "..."


def error_summary(error: BaseException) -> str:
    """One line for an exception: its type and the first line of its message."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first}"[:200] if first else type(error).__name__


def os_error_line(error: OSError) -> str:
    """An operating-system error as `PATH: reason` (the path the user gave when the error knows it)."""
    reason = error.strerror or type(error).__name__
    return f"{error.filename}: {reason}" if error.filename else f"{reason} ({error})"


def exit_on_user_error(main: F) -> F:
    """Run `main`; on `UserError` print `error: <message>` to stderr and exit 2. An `OSError` that
    reaches here (an unwritable or full output location, a folder where a file was expected) is the
    user's environment, not a bug: one line naming the path, exit 2. A reader that left early
    (`--help | head`) is not an error: the rest of the output is dropped, exit 0."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except BrokenPipeError:
            # stdout's pipe is closed: point it at /dev/null so that the flush at exit raises nothing
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        except UserError as error:
            report(one_line(str(error)), every_process=not isinstance(error, ConfigError))
        except OSError as error:
            report(one_line(os_error_line(error)))
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


# How long a process other than the first waits on a config error for the first process to print it.
# The launcher stops every worker as soon as one exits (it checks every 0.1 s by default), so an early
# exit here could stop the first process before it prints: the error would be lost.
CONFIG_ERROR_WAIT_S = 20.0


def report(message: str, every_process: bool = True) -> None:
    """Print `error: message`, then exit 2. Under `accelerate launch` every process reads the same
    config, so a config error is printed by the first process only; other errors (a file one process
    reads) by each process that meets them. The other processes wait for the first to print and exit
    (the launcher then stops them); one still running after the wait prints the error itself."""
    if not every_process and os.environ.get("RANK", "0") != "0":
        time.sleep(CONFIG_ERROR_WAIT_S)
    print(f"error: {message}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)

