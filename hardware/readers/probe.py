"""The JPKI probe shared by every back-end: what to ask a presented item, and how to read the answers.

Only ISO-DEP items (and unknown contact ATRs) are asked anything; FeliCa, MIFARE and storage cards never
receive an APDU. All commands go through `apdu.guarded`.
"""

from __future__ import annotations

import re
import time

from hardware.readers import apdu
from hardware.readers.contract import CardGone, CardTransportError, Failure, Family, Observation, ProbeOptions

PROBED_FAMILIES = frozenset({Family.ISO_DEP_A, Family.ISO_DEP_B, Family.OTHER})

TOKEN_LABEL = re.compile(r"JPKIAP[0-9A-Z_]{0,26}")


def observe(
    family: Family,
    transmit: apdu.Transmit,
    options: ProbeOptions,
    presentations: int = 1,
    started: float | None = None,
) -> Observation:
    """Probe an item of `family` through the raw `transmit` (which may raise CardGone / CardTransportError)."""
    started = time.monotonic() if started is None else started
    jpki_sw: int | None = None
    token: str | None = None
    failure = Failure.NONE
    if family in PROBED_FAMILIES:
        send = apdu.guarded(transmit)
        try:
            jpki_sw = apdu.status_word(send(apdu.SELECT_JPKI))
            if jpki_sw is None:
                raise CardTransportError("no status word")
            if jpki_sw == apdu.SW_OK and options.read_token:
                token = _read_token(send)
        except CardGone:
            failure = Failure.REMOVED
        except CardTransportError:
            failure = Failure.TRANSPORT
    return Observation(
        family=family,
        jpki_sw=jpki_sw,
        token=token,
        failure=failure,
        presentations=presentations,
        elapsed_ms=(time.monotonic() - started) * 1000.0,
    )


def _read_token(send: apdu.Transmit) -> str | None:
    if apdu.status_word(send(apdu.SELECT_TOKEN_EF)) != apdu.SW_OK:
        return None
    response = send(apdu.READ_TOKEN)
    if apdu.status_word(response) != apdu.SW_OK:
        return None
    return token_label(response[:-2])


def token_label(data: bytes) -> str:
    """The token type string ("JPKIAPICCTOKEN2"), or "other": anything else is never passed on."""
    text = bytes(data).rstrip(b"\x00\x20\xff").decode("ascii", errors="replace")
    return text if TOKEN_LABEL.fullmatch(text) else "other"
