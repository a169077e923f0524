"""User-facing errors: one line, non-zero exit, no traceback."""
import argparse
import sys


class UserError(Exception):
    """A mistake in the user's input (a flag, a file, a folder). Its message says what to do."""


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (prog: error: ...) and exits 2, without the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


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
