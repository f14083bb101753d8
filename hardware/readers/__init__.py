"""Card reader back-ends (PC/SC, nfcpy, simulated) behind one interface; see `base.py`."""

from hardware.readers.base import (
    NOTHING,
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
    open_reader,
)

__all__ = [
    "NOTHING",
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
