"""What must never reach a staff screen (the kiosk's staff menu, the console): a raw id or an ISO 8601
timestamp. Staff-facing states are ids rendered from the staff texts (catalogue/locales/<ja|en>/staff.json) in
the viewer's language, and times are the facility's clock time (「10:42」, 「3分前」)."""

from __future__ import annotations

import re

from hardware.readers.contract import Cause
from kiosk import events
from kiosk.precheck import Outcome
from kiosk.vocabulary import CALL_REASONS, LAMP_PATTERNS

ISO_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}|\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")
# snake_case words (lamp_status, patient_request, reader_fault ...), except where a text names a config key or a
# path on purpose ("[reader] nfc_path", "/run/pcscd/pcscd.comm")
SNAKE_CASE = re.compile(r"(?<!\] )(?<![A-Za-z0-9_./\-])[a-z][a-z0-9]*(?:_[a-z0-9]+)+(?![A-Za-z0-9_/])")
IDS = frozenset({*LAMP_PATTERNS, *events.EVENT_KINDS, *CALL_REASONS, *(str(o) for o in Outcome),
                 *(str(c) for c in Cause)})
# one-word ids that are also English words are only looked for in Japanese texts
ASCII_WORD = re.compile(r"[A-Za-z_]+")


def raw_ids(text: str, lang: str) -> list[str]:
    """The raw ids and ISO timestamps in `text`, a staff screen's text in `lang` (ja or en)."""
    found = ISO_TIMESTAMP.findall(text) + SNAKE_CASE.findall(text)
    if lang == "ja":
        found += [word for word in ASCII_WORD.findall(text) if word in IDS]
    return list(dict.fromkeys(found))

