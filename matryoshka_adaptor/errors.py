"""The one exception type the command-line entry points turn into a one-line message."""

import logging
import sys
from collections.abc import Callable


class InputError(ValueError):
    """Bad input (a file, a line, a value, a config): the message names it and says what was expected."""


def run_command(action: Callable[[], object]) -> int:
    """Run a command-line action with logging on: an InputError becomes one line on stderr and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        action()
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
