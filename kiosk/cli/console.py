"""`kiosk console`: the staff web console (and `--hash-password` to make an accounts-file entry)."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from kiosk.cli import add_network_options, config_from_args
from kiosk.config import ConfigError, config_from_dict


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("console", help="run the staff web console (live calls, kiosks, history)",
                                   description="Serve the staff console on the facility LAN; see docs/console.md.")
    add_network_options(parser)
    parser.add_argument("--listen", metavar="HOST:PORT", help="address to serve on (default [console] listen)")
    parser.add_argument("--accounts", metavar="PATH", type=Path, help="accounts file (default [console] accounts_file)")
    parser.add_argument("--hash-password", action="store_true",
                        help="ask for a password and print the password_hash line for an accounts file")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.hash_password:
        return _hash_password()
    config = config_from_args(args)
    overrides = {k: v for k, v in (("listen", args.listen), ("accounts_file", args.accounts)) if v}
    if overrides:
        data = config.model_dump()
        data["console"].update(overrides)
        config = config_from_dict(data, source="command line")
    from kiosk.console.app import ConsoleSetupError, serve

    try:
        return serve(config)
    except ConsoleSetupError as exc:
        raise ConfigError(str(exc)) from None


def _hash_password() -> int:
    from kiosk.passwords import hash_secret

    if sys.stdin.isatty():
        first = getpass.getpass("New console password: ")
        if first != getpass.getpass("Once more: "):
            print("kiosk console: the two passwords differ; nothing printed", file=sys.stderr)
            return 1
    else:
        first = sys.stdin.readline().rstrip("\n")
    if len(first) < 8:
        print("kiosk console: use at least 8 characters", file=sys.stderr)
        return 1
    print(f'password_hash = "{hash_secret(first)}"')
    return 0
