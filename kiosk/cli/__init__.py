"""The `kiosk` command line. Each sub-command lives in its own module with a `register(subparsers)`.

Registration stays light (no heavy imports); each handler imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from pathlib import Path

from kiosk.config import Config, ConfigError, load_config

# each sub-command module adds its name here
SUBCOMMAND_MODULES: tuple[str, ...] = ("console", "run", "catalogue", "watch", "precheck", "voice", "locales", "doctor",
                                       "recorder", "report")


def add_network_options(parser: argparse.ArgumentParser) -> None:
    """--broker and --state-dir, taken by every networked command."""
    parser.add_argument("--broker", metavar="URL", help="MQTT broker, mqtt://HOST:PORT or mqtts://HOST:PORT")
    parser.add_argument("--state-dir", metavar="DIR", type=Path, help="where the outbox and state live")


def config_from_args(args: argparse.Namespace) -> Config:
    """The config file named by --config (or the default), with CLI overrides applied."""
    config = load_config(args.config)
    if getattr(args, "broker", None):
        config.mqtt.url = args.broker
    if getattr(args, "state_dir", None):
        config.kiosk.state_dir = args.state_dir
    return config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kiosk", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, metavar="PATH", help="config file (default /etc/kiosk/config.toml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (never personal data)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        module = importlib.import_module(f"kiosk.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.handler(args) or 0)
    except ConfigError as exc:
        print(f"kiosk: configuration error:\n{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `kiosk catalogue show 001 | head`: the reader went away; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's final flush must not fail
        return 128 + signal.SIGPIPE
