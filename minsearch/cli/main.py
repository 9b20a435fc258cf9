"""The ``minsearch`` command: one subcommand per module in :data:`COMMANDS`.

Each subcommand module defines ``add_parser(subparsers)`` (which sets ``func`` on its parser)
and keeps its heavy imports inside the function that runs it. User mistakes (``ValueError``,
``TypeError``, ``FileNotFoundError``) become one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("genes", "search", "resume", "front", "report", "export", "ui", "ln_free")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minsearch",
        description="Find which standard components of a network can go.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"minsearch.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, KeyError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"minsearch {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"minsearch {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `minsearch genes ... | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
