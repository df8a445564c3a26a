"""User-facing errors and the one place that turns them into a clean exit.

Every problem a user can cause (a bad file, a bad config value) raises `UserError` with one line
that names the file or key and what is wrong. Command-line entry points wrap `main` in
`exit_on_user_error`, which prints that line to stderr and exits with code 2: never a traceback.
"""

from __future__ import annotations

import functools
import sys
from typing import Callable, TypeVar

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A problem with the user's input, reported as one line and exit code 2."""


class DataError(UserError):
    """A data file is missing, unreadable or does not follow its format."""


class ConfigError(UserError):
    """A configuration key or value is unknown or invalid."""


F = TypeVar("F", bound=Callable[..., object])


def exit_on_user_error(main: F) -> F:
    """Run `main`; on `UserError` print `error: <message>` to stderr and exit 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
