"""The one exception type users see: a clear message naming the file or flag at fault.

The CLI prints a `NetsightError` as a single line (no traceback) and exits with status 2;
anything else is a bug and keeps its traceback.
"""


class NetsightError(Exception):
    """Bad input or an impossible request, explained in plain words."""


def warn(message: str) -> None:
    """A warning the user should read (a skipped file, a fallback taken): one line on stderr."""
    import sys

    print(f"netsight: warning: {' '.join(message.split())}", file=sys.stderr, flush=True)
