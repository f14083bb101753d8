"""`kiosk doctor`: check everything the kiosk depends on and print a checklist (OK / warning / failed, each
warning and failure with its fix in one line) in the staff's language.

Run it as the service user (`sudo -u kiosk /opt/kiosk/venv/bin/kiosk doctor`): device and pcscd permissions
are checked with the rights of whoever runs it. Exit codes: 0 nothing failed (warnings allowed), 1 a check
failed. `--json`: one object per finding (check, status, id, message, fix).
"""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    from kiosk.doctor import STAFF_LANGUAGES

    parser = subparsers.add_parser("doctor", help="check readers, pcscd, GPIO, display, broker, clock, disk, "
                                   "fonts and voice; print a checklist with fixes", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--lang", choices=STAFF_LANGUAGES, help="language of the checklist (default: the staff "
                        "console's, [console] language)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from kiosk.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load_config
    from kiosk.doctor import DoctorTexts, as_records, exit_code, render
    from kiosk.doctor_probes import run_all

    path = args.config or DEFAULT_CONFIG_PATH
    try:
        config, error = load_config(args.config), None
    except ConfigError as exc:
        config, error = Config(), str(exc)  # the other checks still run, with the defaults
    findings = run_all(config, str(path), error)
    texts = DoctorTexts(args.lang or config.console.language)
    if args.json:
        json.dump(as_records(findings, texts), sys.stdout, ensure_ascii=False, indent=1)
        print()
    else:
        print(render(findings, texts))
    return exit_code(findings)
