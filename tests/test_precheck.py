"""The classifier and its rule table, driven through the simulated reader (same probe as the real back-ends)."""

from __future__ import annotations

import pytest

from hardware.readers import apdu
from hardware.readers.contract import (
    Cause,
    Failure,
    Family,
    Observation,
    Presented,
    ProbeOptions,
    ReaderError,
    ReaderStatus,
    Removed,
)
from hardware.readers.sim import SimReader
from kiosk.precheck import CODES, Outcome, RulesError, classify, default_rules_path, load_rules
from kiosk.scenarios import load_scenario, scenario_dir
from tests.rigs.pcsc import EXPECTED_OUTCOMES

UNPLUGGED = ReaderStatus(False, "simulated unplug", Cause.SIMULATED_UNPLUG, {"reader": "simulated reader"})


@pytest.fixture
def sim(running_reader):
    running = running_reader(SimReader())
    assert running.next_event() == ReaderStatus.ready("simulated reader")
    return running


@pytest.mark.parametrize("preset", sorted(EXPECTED_OUTCOMES))
def test_every_preset_maps_to_its_outcome_and_code(sim, preset):
    sim.reader.present(preset)
    observation = sim.settled_observation()
    for expect, wanted in zip((None, "iphone", "android"), EXPECTED_OUTCOMES[preset], strict=True):
        verdict = classify(observation, expect)
        assert verdict.outcome == wanted, (preset, expect)
        assert verdict.code == CODES[Outcome(wanted)]
    assert all(command in apdu.ALLOWED for command in sim.reader.wire)


def test_codes_follow_the_official_table():
    assert CODES[Outcome.UNREADABLE_CARD] == "001"
    assert CODES[Outcome.NOT_MYNUMBER] == "002"
    assert CODES[Outcome.SMARTPHONE_MISMATCH] == "020"
    assert CODES[Outcome.SMARTPHONE_UNREADABLE] == "021"
    assert {CODES[o] for o in (Outcome.MYNUMBER_CARD, Outcome.SMARTPHONE_ANDROID, Outcome.SMARTPHONE_IPHONE)} == {None}


def test_felica_and_mifare_never_receive_an_apdu(sim):
    for preset in ("transit_card", "mifare", "juki_card", "silent"):
        sim.reader.present(preset)
        sim.settled_observation()
    assert sim.reader.wire == []


def test_token_read_can_be_switched_off(running_reader):
    running = running_reader(SimReader(options=ProbeOptions(read_token=False)))
    running.reader.present("iphone")
    observation = running.next_observation()
    assert observation.jpki_sw == 0x9000 and observation.token is None
    assert running.reader.wire == [apdu.SELECT_JPKI]
    assert classify(observation).outcome is Outcome.MYNUMBER_CARD  # "untyped" counts as a card by default


def test_nothing_and_remove_post_removed_once(sim):
    sim.reader.present("mynumber_card")
    assert isinstance(sim.next_event(), Presented)
    sim.reader.present("nothing")
    sim.reader.remove()
    sim.reader.present("android")
    assert sim.next_event() == Removed()
    assert isinstance(sim.next_event(), Presented)


def test_pulled_card_reports_removal_after_the_presentation(sim):
    sim.reader.present("pulled_mid_exchange")
    event = sim.next_event()
    assert event.observation.failure is Failure.REMOVED
    assert sim.next_event() == Removed()


def test_unplug_and_plug_post_reader_status(sim):
    sim.reader.unplug()
    assert sim.next_event() == UNPLUGGED
    sim.reader.plug()
    assert sim.next_event() == ReaderStatus.ready("simulated reader")


def test_nothing_presented_is_its_own_outcome():
    verdict = classify(Observation(family=Family.NONE))
    assert verdict.outcome is Outcome.NOTHING and verdict.code is None


def test_hints_come_from_the_rule_table():
    android = Observation(Family.ISO_DEP_A, jpki_sw=0x9000, token="JPKIAPGPSETOKEN")
    assert classify(android).hints == ("choose_android",)
    flapping = Observation(Family.ISO_DEP_B, jpki_sw=0x9000, token="JPKIAPICCTOKEN2", presentations=3)
    verdict = classify(flapping, "android")
    assert verdict.outcome is Outcome.SMARTPHONE_UNREADABLE
    assert verdict.hints[:2] == ("one_item_only", "out_of_case") and "restart_phone" in verdict.hints
    assert len(set(verdict.hints)) == len(verdict.hints)


def test_unknown_status_word_and_unknown_token():
    assert classify(Observation(Family.ISO_DEP_A, jpki_sw=0x6D00)).outcome is Outcome.NOT_MYNUMBER
    assert classify(Observation(Family.OTHER, jpki_sw=None)).outcome is Outcome.UNREADABLE_CARD
    odd = Observation(Family.ISO_DEP_B, jpki_sw=0x9000, token="other")
    assert classify(odd).outcome is Outcome.MYNUMBER_CARD


def test_rule_override_changes_behaviour(tmp_path):
    text = default_rules_path().read_text(encoding="utf-8").replace('untyped = "card"', 'untyped = "unreadable"')
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    rules = load_rules(path)
    odd = Observation(Family.ISO_DEP_B, jpki_sw=0x9000, token="other")
    assert classify(odd, rules=rules).outcome is Outcome.UNREADABLE_CARD


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        ('present = ["9000"]', 'present = ["90"]', "jpki.present"),
        ('presentations = 3', 'presentations = 1', "flapping.presentations"),
        ('felica = "wrong_card"', 'felica = "wrong"', "families.felica"),
        ('none = "mynumber_card"', 'none = "great"', "outcomes.card.none"),
        ("[tokens]", "[tokenz]", "tokenz"),
    ],
)
def test_bad_rule_table_names_file_and_field(tmp_path, old, new, named):
    path = tmp_path / "rules.toml"
    path.write_text(default_rules_path().read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    assert str(path) in str(caught.value) and named in str(caught.value)


def test_unreadable_rule_files(tmp_path):
    with pytest.raises(RulesError, match="not found"):
        load_rules(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_bytes(b"[probe\n")
    with pytest.raises(RulesError, match=r"broken\.toml: not valid TOML"):
        load_rules(broken)


def test_shipped_scenarios_load_and_name_only_known_presets():
    names = sorted(p.stem for p in scenario_dir().glob("*.toml"))
    assert "demo" in names and set(EXPECTED_OUTCOMES) <= set(names)
    for name in names:
        assert load_scenario(name).steps


def test_bad_scenarios_are_refused_clearly(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[steps]]\npresent = "passport"\n', encoding="utf-8")
    with pytest.raises(ReaderError, match="unknown preset 'passport'"):
        load_scenario(str(bad))
    spinning = tmp_path / "spin.toml"
    spinning.write_text('repeat = true\n[[steps]]\npresent = "iphone"\nhold = 0\n', encoding="utf-8")
    with pytest.raises(ReaderError, match="must take some time"):
        load_scenario(str(spinning))
    with pytest.raises(ReaderError, match="no such scenario"):
        load_scenario("no-such-scenario")
    with pytest.raises(ReaderError, match="unknown preset"):
        SimReader().present("passport")


def test_scenario_plays_in_order(tmp_path, running_reader):
    script = tmp_path / "script.toml"
    script.write_text(
        '[[steps]]\npresent = "iphone"\nhold = 0.05\n[[steps]]\nunplug = 0.05\n'
        '[[steps]]\npresent = "transit_card"\nhold = 0.05\n',
        encoding="utf-8",
    )
    running = running_reader(SimReader(scenario=load_scenario(str(script))))
    kinds = [running.next_event() for _ in range(7)]
    assert kinds[0] == ReaderStatus.ready("simulated reader")
    assert classify(kinds[1].observation).outcome is Outcome.SMARTPHONE_IPHONE
    assert kinds[2:5] == [Removed(), UNPLUGGED, ReaderStatus.ready("simulated reader")]
    assert classify(kinds[5].observation).outcome is Outcome.NOT_MYNUMBER
    assert kinds[6] == Removed()



def test_every_hint_in_the_rule_table_has_a_japanese_text():
    import json

    from kiosk.paths import catalogue_root
    from kiosk.precheck import DEFAULT_RULES

    texts = json.loads((catalogue_root() / "locales" / "ja" / "ui.json").read_text(encoding="utf-8"))
    hint_ids = {hint for hints in DEFAULT_RULES.hints.values() for hint in hints}
    assert hint_ids and not {h for h in hint_ids if f"hint.{h}" not in texts}


def test_open_reader_specs():
    from hardware.readers.nfc import NfcReader
    from hardware.readers.pcsc import PcscReader
    from hardware.readers.registry import open_reader

    assert isinstance(open_reader("sim"), SimReader)
    assert open_reader("sim:demo", load_scenario=load_scenario).scenario.repeat is True
    pcsc = open_reader("pcsc", "RC-S300", ProbeOptions(read_token=False))
    assert isinstance(pcsc, PcscReader) and pcsc.name == "RC-S300" and pcsc.options.read_token is False
    nfc = open_reader("nfc:udp:127.0.0.1:5000")
    assert isinstance(nfc, NfcReader) and nfc.path == "udp:127.0.0.1:5000"
    assert open_reader("nfc").path == "usb"
    with pytest.raises(ReaderError, match="unknown reader back-end 'serial'"):
        open_reader("serial")
    with pytest.raises(ReaderError, match="no such scenario"):
        open_reader("sim:no-such-scenario", load_scenario=load_scenario)
    with pytest.raises(ReaderError, match="no scenario loader"):
        open_reader("sim:demo")


def test_every_registered_back_end_loads_and_names_itself():
    """A row of the registry is the whole wiring: its class loads lazily, is a Reader and has the row's kind."""
    from hardware.readers import registry
    from hardware.readers.contract import Reader
    from hardware.readers.registry import open_reader

    for backend in registry.BACKENDS:
        cls = backend.load()
        assert issubclass(cls, Reader) and cls.kind == backend.name
        assert backend.grammar in registry.spec_metavar() and backend.grammar in registry.spec_help()
        assert open_reader(backend.name, load_scenario=load_scenario).kind == backend.name
    # The texts are derived from the table, whatever rows it has (a new back-end is one row, no test to edit).
    grammars = [backend.grammar for backend in registry.BACKENDS]
    assert grammars[:3] == ["pcsc", "nfc[:PATH]", "sim[:SCENARIO]"]
    assert registry.spec_metavar() == "|".join(grammars)
    assert registry.spec_choices() == ", ".join(grammars[:-1]) + " or " + grammars[-1]


def test_the_config_accepts_exactly_the_registered_back_ends():
    from hardware.readers import registry
    from kiosk.config import ConfigError, config_from_dict

    for spec in ("pcsc", "nfc", "nfc:udp:127.0.0.1:5000", "sim", "sim:", "sim:demo"):
        assert config_from_dict({"reader": {"backend": spec}}).reader.backend == spec
    with pytest.raises(ConfigError) as error:
        config_from_dict({"reader": {"backend": "usb-magic"}}, source="kiosk.toml")
    assert "kiosk.toml: [reader.backend]" in str(error.value)
    assert f"unknown reader back-end 'usb-magic': use {registry.spec_choices()}" in str(error.value)
