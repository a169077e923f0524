"""User-facing errors: one line, non-zero exit, no traceback."""
import sys


class UserError(Exception):
    """A mistake in the user's input (a flag, a file, a folder). Its message says what to do."""


def run_cli(main, argv=None):
    """Run `main(argv)`; a UserError becomes a one-line message on stderr and exit code 2."""
    try:
        code = main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
