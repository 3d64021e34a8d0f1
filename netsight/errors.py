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


class UserCodeError(NetsightError):
    """An exception raised by the user's own code (the file or module of `--model SPEC`), at import,
    in the constructor or factory, or in the model's forward pass: reported as the user's error (one
    line naming their file and line, exit status 2), never as a bug in netsight. `original` is the
    exception their code raised (also the `__cause__`), `filename`/`lineno` the frame named."""

    def __init__(self, message: str, original: BaseException, filename: str | None = None, lineno: int | None = None):
        super().__init__(message)
        self.original, self.filename, self.lineno = original, filename, lineno
