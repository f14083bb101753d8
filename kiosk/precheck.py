"""The pre-check classifier: an identifier-free Observation (+ the patient's phone choice) → a Verdict.

Pure and rule-table driven: what needs field tuning (token strings, status words, thresholds, which items
count as what, hints) is data in `precheck_rules.toml`. Each outcome carries its official code.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hardware.readers.contract import Failure, Family, Observation, ProbeOptions
from kiosk.tomldata import load_toml

Expect = Literal["card", "iphone", "android"]
Seen = Literal["card", "android", "iphone", "wrong_card", "unreadable"]
Choice = Literal["none", "card", "iphone", "android"]
UNPROBED_FAMILIES = ("felica", "mifare", "storage", "juki", "unknown")


class Outcome(StrEnum):
    NOTHING = "nothing"
    MYNUMBER_CARD = "mynumber_card"
    SMARTPHONE_ANDROID = "smartphone_android"
    SMARTPHONE_IPHONE = "smartphone_iphone"
    NOT_MYNUMBER = "not_mynumber"
    UNREADABLE_CARD = "unreadable_card"
    SMARTPHONE_UNREADABLE = "smartphone_unreadable"
    SMARTPHONE_MISMATCH = "smartphone_mismatch"


# The official code the face-auth reader would show for each outcome (None: all is well).
CODES: dict[Outcome, str | None] = {
    Outcome.NOTHING: None,
    Outcome.MYNUMBER_CARD: None,
    Outcome.SMARTPHONE_ANDROID: None,
    Outcome.SMARTPHONE_IPHONE: None,
    Outcome.NOT_MYNUMBER: "002",
    Outcome.UNREADABLE_CARD: "001",
    Outcome.SMARTPHONE_UNREADABLE: "021",
    Outcome.SMARTPHONE_MISMATCH: "020",
}


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    code: str | None
    hints: tuple[str, ...] = ()


class RulesError(Exception):
    """A rule table that cannot be used; the message names file and field."""


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProbeRules(_Table):
    read_token: bool
    flap_window_seconds: float = Field(gt=0, le=60)


class JpkiRules(_Table):
    present: frozenset[int]

    @field_validator("present", mode="before")
    @classmethod
    def _status_words(cls, value: object) -> object:
        if not isinstance(value, list):
            return value
        words = set()
        for word in value:
            if not (isinstance(word, str) and len(word) == 4 and all(c in "0123456789abcdefABCDEF" for c in word)):
                raise ValueError(f"status words are 4 hex digits such as \"9000\", not {word!r}")
            words.add(int(word, 16))
        return words


class TokenRules(_Table):
    card: tuple[str, ...]
    android: tuple[str, ...]
    iphone: tuple[str, ...]
    untyped: Literal["card", "android", "iphone", "unreadable"]


class FamilyRules(_Table):
    felica: Seen
    mifare: Seen
    storage: Seen
    juki: Seen
    unknown: Seen


class FlappingRules(_Table):
    presentations: int = Field(ge=2)


class Row(_Table):
    none: Outcome
    card: Outcome
    iphone: Outcome
    android: Outcome


class OutcomeRules(_Table):
    card: Row
    android: Row
    iphone: Row
    wrong_card: Row
    unreadable: Row


class Rules(_Table):
    probe: ProbeRules
    jpki: JpkiRules
    tokens: TokenRules
    families: FamilyRules
    flapping: FlappingRules
    outcomes: OutcomeRules
    hints: dict[str, tuple[str, ...]]

    def probe_options(self) -> ProbeOptions:
        """What the reader back-end should ask, from the `[probe]` table."""
        return ProbeOptions(read_token=self.probe.read_token, flap_window_seconds=self.probe.flap_window_seconds)


def default_rules_path() -> Path:
    return Path(str(importlib.resources.files("kiosk") / "precheck_rules.toml"))


def load_rules(path: Path | None = None) -> Rules:
    """Read and validate a rule table (default: the shipped one)."""
    return load_toml(path or default_rules_path(), Rules, RulesError, "rule table")


DEFAULT_RULES = load_rules()


def classify(observation: Observation, expect: Expect | None = None, rules: Rules = DEFAULT_RULES) -> Verdict:
    """What the presented item was, and the official code the face-auth reader would show for it."""
    if observation.family is Family.NONE:
        return Verdict(Outcome.NOTHING, None)
    seen, reason = _seen(observation, rules)
    choice: Choice = expect or "none"
    outcome = getattr(getattr(rules.outcomes, seen), choice)
    hints: dict[str, None] = {}
    for key in (reason, f"{seen}.{choice}", outcome.value):
        hints.update(dict.fromkeys(rules.hints.get(key, ())))
    return Verdict(outcome, CODES[outcome], tuple(hints))


def _seen(observation: Observation, rules: Rules) -> tuple[Seen, str]:
    """What was presented (card / android / iphone / wrong_card / unreadable) and why we think so."""
    if observation.presentations >= rules.flapping.presentations:
        return "unreadable", "flapping"
    if observation.failure is not Failure.NONE:
        return "unreadable", observation.failure.value
    if observation.family.value in UNPROBED_FAMILIES:
        return getattr(rules.families, observation.family.value), observation.family.value
    if observation.jpki_sw is None:
        return "unreadable", "no_answer"
    if observation.jpki_sw not in rules.jpki.present:
        return "wrong_card", "jpki_absent"
    for kind in ("card", "android", "iphone"):
        if observation.token in getattr(rules.tokens, kind):
            return kind, f"token_{kind}"
    return rules.tokens.untyped, "token_untyped"
