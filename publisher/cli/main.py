"""`publisher` entry point: global options, sub-command dispatch, and the error edge.

Each sub-command lives in its own module of this package exposing `register(subparsers)`; the
parser it adds sets `handler(args, ctx) -> int`. Domain errors become one `Error: …` line and an
exit code here, and only here; usage errors exit 2 (argparse's own convention).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from publisher import __version__
from publisher.clock import Clock
from publisher.config import Settings
from publisher.errors import PublisherError

COMMANDS = ("init", "check", "build", "digest", "subscribers", "status", "run", "serve", "dkim", "inbound")
# Commands that write (feeds/, state/, mail): without a configuration file they refuse rather than
# build the example site into whatever folder they were started in. check and status only read.
WRITERS = frozenset({"build", "digest", "subscribers", "run", "serve", "inbound"})
# Commands that use the state database: each refuses before it starts when the database was lost
# (store/db.py), rather than failing later or, in a server or daemon, running without it.
STATEFUL = WRITERS | {"status"}

log = logging.getLogger("publisher")


@dataclass
class Context:
    """What every command receives: the settings (read once, on first use) and the clock."""

    config_path: Path | None
    verbosity: int
    log_format: str
    config_required: bool = False
    _settings: Settings | None = field(default=None, repr=False)
    _clock: Clock | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from publisher.config import DEFAULT_CONFIG
            from publisher.config_file import load_settings
            from publisher.errors import ConfigError

            settings = load_settings(self.config_path, required=self.config_required)
            found = self.config_path is not None or Path(DEFAULT_CONFIG).exists()
            if not found and not settings.seeds_dir.is_dir():
                # check and status in a folder that is no site: say what to do, not "no seeds/".
                raise ConfigError(
                    f"no {DEFAULT_CONFIG} and no seeds/ in {settings.base_dir}: this folder is not a "
                    "site; run `publisher init` to start one, or name one with --config PATH"
                )
            self._settings = settings
        return self._settings

    @property
    def clock(self) -> Clock:
        if self._clock is None:
            from publisher.clock import from_environment

            self._clock = from_environment()
        return self._clock


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse's convention: usage errors exit 2, with the usage line first.
        self.print_usage(sys.stderr)
        self.exit(2, f"Error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="publisher",
        description="Publish the articles in seeds/ as Atom, RSS and JSON feeds, web pages and an "
        "email digest.",
        epilog="Run 'publisher COMMAND --help' for a command's options. Exit status: 0 success, "
        "1 a problem was found or a step failed, 2 usage or configuration error, 3 another publisher "
        "holds the lock.",
    )
    parser.add_argument("--version", action="version", version=f"publisher {__version__}")
    parser.add_argument(
        "--config", type=Path, metavar="PATH", help="settings file (default: ./publisher.toml if present)"
    )
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-v", "--verbose", action="count", default=0, help="say more (repeat for debug)")
    loudness.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument(
        "--log-format", choices=("text", "json"), default="text", help="log lines as text or JSON lines"
    )
    parser.add_argument(
        "--recreate-database",
        action="store_true",
        help="the state database is lost (missing or an empty file): start a new, empty one "
        "(no subscribers, no send ledger) instead of refusing",
    )
    parser.add_argument(
        "--new-secret-key",
        action="store_true",
        help="state/secret.key is lost: make a new one instead of refusing (voids every unsubscribe "
        "and confirmation link already mailed)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        module = importlib.import_module(f"publisher.cli.{name}")
        module.register(sub)
        _add_loudness(sub.choices[name])
    return parser


def _add_loudness(command: argparse.ArgumentParser) -> None:
    """`publisher check -q` works as well as `publisher -q check`. SUPPRESS: when not given after
    the command, the value given before it stands."""
    taken = {opt for action in command._actions for opt in action.option_strings}
    if taken & {"-v", "--verbose", "-q", "--quiet"}:
        return  # the command defines its own
    group = command.add_mutually_exclusive_group()
    group.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="say more (repeat for debug)"
    )
    group.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="say less")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    verbosity = -1 if args.quiet else args.verbose
    from publisher import logs

    logs.setup(verbosity, args.log_format)
    ctx = Context(
        config_path=args.config,
        verbosity=verbosity,
        log_format=args.log_format,
        config_required=args.command in WRITERS,
    )
    try:
        if args.recreate_database:
            _recreate_database(ctx)
        if args.new_secret_key:
            _new_secret_key(ctx)
        if args.command in STATEFUL:
            from publisher.store import db

            db.refuse_lost(ctx.settings.db_path)
        result: int = args.handler(args, ctx)
        return result
    except sqlite3.Error as exc:  # a database call not wrapped below: still one line naming the file
        from publisher.store import db

        database = ctx._settings.db_path if ctx._settings is not None else Path("state database")
        print(f"Error: {db.describe(database, exc).one_line()}", file=sys.stderr)
        return 1
    except PublisherError as exc:
        print(f"Error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except OSError as exc:  # the machine said no (disk full, permission denied): one line, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"Error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1


def _recreate_database(ctx: Context) -> None:
    from publisher.store import db

    if db.forget_lost(ctx.settings.db_path):
        log.warning("%s: starting a new, empty state database (--recreate-database)", ctx.settings.db_path)


def _new_secret_key(ctx: Context) -> None:
    from publisher.store import keys

    if keys.allow_new(ctx.settings):
        log.warning("%s: a new token secret will be made (--new-secret-key)", ctx.settings.state_dir)


if __name__ == "__main__":
    raise SystemExit(main())
