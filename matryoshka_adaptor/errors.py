"""The one exception type the command-line entry points turn into a one-line message."""


class InputError(ValueError):
    """Bad input (a file, a line, a value, a config): the message names it and says what was expected."""
