"""Card reader back-ends (PC/SC, nfcpy, simulated) behind one contract.

`contract` (what every back-end reports and implements), `registry` (back-ends by name, `open_reader`),
`toolkit` (shared by the device back-ends), `probe` + `apdu` (what may be asked, enforced in one place),
`atr` (family from an ATR), `cards` (card profiles played by the simulator and the test rigs).
"""

from hardware.readers.contract import (
    NOTHING,
    Cause,
    Failure,
    Family,
    Observation,
    Presented,
    ProbeOptions,
    Reader,
    ReaderError,
    ReaderEvent,
    ReaderStatus,
    Removed,
)
from hardware.readers.registry import open_reader

__all__ = [
    "NOTHING",
    "Cause",
    "Failure",
    "Family",
    "Observation",
    "Presented",
    "ProbeOptions",
    "Reader",
    "ReaderError",
    "ReaderEvent",
    "ReaderStatus",
    "Removed",
    "open_reader",
]
