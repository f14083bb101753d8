"""What staff see for an error code: the official title, what to check, and the steps for this facility."""

from __future__ import annotations

from collections.abc import Callable

from kiosk.catalogue import Catalogue, UnknownCode
from kiosk.config import FacilitySection

GLOSS_LANGUAGES = ("en",)  # the official text is Japanese; these get the patient-guidance title as a gloss


def code_info_for(catalogue: Catalogue, facility: FacilitySection) -> Callable[[str], dict]:
    """A function code -> JSON-ready info, with the cause/action steps filtered to `facility`."""

    def info(code: str) -> dict:
        try:
            entry = catalogue.get(code)
        except UnknownCode:
            return {"known": False, "title": "", "titles": {}, "outage": False, "conditions": []}
        titles = {lang: catalogue.guidance(code, lang).title for lang in GLOSS_LANGUAGES
                  if lang in catalogue.languages}
        conditions = [
            {"check": condition.check,
             "steps": [{"text": step.text, "depth": step.depth} for step in condition.steps_for(facility)]}
            for condition in entry.conditions
        ]
        return {"known": True, "title": entry.title, "titles": titles, "outage": entry.outage,
                "conditions": conditions}

    return info
