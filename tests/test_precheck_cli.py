"""`kiosk precheck` end to end: sim scenarios, and real pcscd + vpcd with virtual cards."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hardware.readers import apdu
from kiosk.cli import main
from kiosk.precheck import CODES, Outcome
from tests.rigs.pcsc import EXPECTED_OUTCOMES

CHOICES = (None, "iphone", "android")


def precheck(capsys, *args: str) -> tuple[int, list[dict], str]:
    status = main(["precheck", *args])
    out, err = capsys.readouterr()
    return status, [json.loads(line) for line in out.splitlines()], err


@pytest.mark.parametrize("preset", ["mynumber_card", "iphone", "transit_card", "silent"])
def test_sim_scenarios_through_the_cli(capsys, preset):
    status, lines, _ = precheck(capsys, "--reader", f"sim:{preset}", "--once", "--json", "--timeout", "5")
    assert status == 0
    assert lines[0]["outcome"] == EXPECTED_OUTCOMES[preset][0]
    assert lines[0]["code"] == CODES[Outcome(EXPECTED_OUTCOMES[preset][0])]


def test_human_readable_line(capsys):
    assert main(["precheck", "--reader", "sim:credit_card", "--once", "--expect", "iphone"]) == 0
    assert capsys.readouterr().out.startswith("smartphone_mismatch  020")


def test_timeout_without_a_presentation_exits_3(capsys):
    status, lines, _ = precheck(capsys, "--reader", "sim", "--once", "--json", "--timeout", "0.3")
    assert (status, lines) == (3, [])


def test_unknown_back_end_and_scenario_exit_4(capsys):
    assert main(["precheck", "--reader", "serial"]) == 4
    assert "unknown reader back-end 'serial'" in capsys.readouterr().err
    assert main(["precheck", "--reader", "sim:no-such"]) == 4
    assert "no such scenario" in capsys.readouterr().err


def test_bad_rule_table_exits_2(capsys, tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text("[probe]\nread_token = 'maybe'\n", encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text(f"[reader]\nrules = '{rules}'\n", encoding="utf-8")
    assert main(["--config", str(config), "precheck", "--reader", "sim", "--once"]) == 2
    err = capsys.readouterr().err
    assert str(rules) in err and "probe.read_token" in err


@pytest.mark.pcsc
@pytest.mark.parametrize("preset", sorted(set(EXPECTED_OUTCOMES) - {"flapping", "two_cards"}))
def test_pcsc_cards_through_the_cli(pcscd, virtual_card, capsys, preset):
    card = virtual_card(preset)
    for expect, wanted in zip(CHOICES, EXPECTED_OUTCOMES[preset], strict=True):
        args = ["--reader", "pcsc", "--reader-name", "PCD 00 00", "--once", "--json", "--timeout", "10"]
        status, lines, _ = precheck(capsys, *args, *(["--expect", expect] if expect else []))
        assert status == 0
        assert (lines[0]["outcome"], lines[0]["code"]) == (wanted, CODES[Outcome(wanted)])
        if preset == "pulled_mid_exchange":
            break  # the card left the field
    assert set(card.received) <= apdu.ALLOWED


@pytest.mark.pcsc
def test_pcsc_cli_exit_codes_as_a_process(pcscd, virtual_card):
    command = [sys.executable, "-m", "kiosk", "precheck", "--reader", "pcsc", "--once", "--json"]
    empty = subprocess.run([*command, "--reader-name", "PCD 00 01", "--timeout", "1"], capture_output=True, text=True,
                           timeout=60)
    assert (empty.returncode, empty.stdout) == (3, "")
    missing = subprocess.run([*command, "--reader-name", "RC-S300", "--timeout", "5"], capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 4 and "no card reader matching 'RC-S300'" in missing.stderr
    virtual_card("android")
    found = subprocess.run([*command, "--reader-name", "PCD 00 00", "--timeout", "10"], capture_output=True, text=True,
                           timeout=60)
    assert found.returncode == 0
    assert json.loads(found.stdout)["outcome"] == "smartphone_android"
