"""The one exception for bad user input.

The CLI prints ``error: <message>`` on one line and exits with code 2 (a traceback only
with ``--debug``). Messages name the file (and row or column) and say what to do.
"""


class InputError(Exception):
    """Bad input from the user: a file, a dataset or family name, an option value."""
