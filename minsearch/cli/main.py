"""The ``minsearch`` command: one subcommand per module in :data:`COMMANDS`.

Each subcommand module defines ``add_parser(subparsers)`` (which sets ``func`` on its parser)
and keeps its heavy imports inside the function that runs it. A user's mistake
(:class:`~minsearch.errors.UserError`) becomes one line on stderr and exit code 2; ``--debug``
(before the subcommand) shows its traceback too. Any other exception is a bug and propagates
with its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from minsearch.errors import UserError

COMMANDS = ("genes", "validate", "search", "resume", "front", "report", "export", "ui", "ln_free")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minsearch",
        description="Find which standard components of a network can go.",
    )
    parser.add_argument("--debug", action="store_true",
                        help="print the full traceback of a user error too")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"minsearch.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        if args.debug:
            traceback.print_exc()
        print(f"minsearch {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # a stopped search says where it stands and 128 + signal
        print(f"minsearch {args.command}: {str(err) or 'interrupted'}", file=sys.stderr)
        return int(getattr(err, "exit_code", 130))
    except BrokenPipeError:  # `minsearch genes ... | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
