"""The reader back-ends by name, like gpiozero's pin factories: one declarative table, loaded lazily.

A spec is `NAME` or `NAME:ARG` (`pcsc`, `nfc:usb`, `sim:demo`). Everything that names back-ends is derived
from `BACKENDS`: `open_reader`, its error text, the `kiosk precheck --reader` metavar and help, and the
config's `reader.backend` check. Adding a back-end = one row here + its module (a `Reader` subclass with
`kind` = the row's name and an `open(request)` classmethod); see "Add a reader back-end" in docs/design.md.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from hardware.readers.contract import Cause, OpenRequest, ProbeOptions, Reader, ReaderError


@dataclass(frozen=True)
class Backend:
    """One row: `name` (the spec's first part and the class's `kind`), `target` ("module:Class", imported
    only when opened), `arg` (metavar of the optional `:ARG`, None: takes none) and a one-line `help`."""

    name: str
    target: str
    arg: str | None
    help: str

    @property
    def grammar(self) -> str:
        """`name` or `name[:ARG]`."""
        return f"{self.name}[:{self.arg}]" if self.arg else self.name

    def load(self) -> type[Reader]:
        """The back-end's class; ReaderError when its module or driver library cannot be imported."""
        module_name, _, class_name = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ReaderError(f"reader back-end {self.name!r} is not available here: {exc}") from None
        cls: type[Reader] = getattr(module, class_name)
        return cls


BACKENDS: tuple[Backend, ...] = (
    Backend("pcsc", "hardware.readers.pcsc:PcscReader", None,
            "a PC/SC reader under pcscd (Sony RC-S300, any CCID reader, picked by --reader-name)"),
    Backend("nfc", "hardware.readers.nfc:NfcReader", "PATH",
            "an nfcpy device (RC-S380, PN533, ACR122U) at nfcpy's PATH (usb, usb:054c:06c3, ...; default usb)"),
    Backend("sim", "hardware.readers.sim:SimReader", "SCENARIO",
            "the simulated reader, played from SCENARIO (a shipped name or a .toml file)"),
)


@dataclass(frozen=True)
class KnownReader:
    """A USB reader model and the back-ends (`Backend.name`) able to drive it."""

    model: str
    backends: tuple[str, ...]


# USB vendor:product -> model. nfcpy 1.0.4 cannot drive the RC-S300 (nfcpy issues #214, #240); libccid lists
# it (054c:0dc8 /S, 054c:0dc9 /P) since 1.4.35. An ACR122U works with either, but not with both at once.
KNOWN_READERS: dict[tuple[int, int], KnownReader] = {
    (0x054C, 0x0DC8): KnownReader("RC-S300", ("pcsc",)),
    (0x054C, 0x0DC9): KnownReader("RC-S300/P", ("pcsc",)),
    (0x054C, 0x06C1): KnownReader("RC-S380", ("nfc", "pcsc")),
    (0x054C, 0x06C3): KnownReader("RC-S380", ("nfc", "pcsc")),
    (0x054C, 0x02E1): KnownReader("RC-S330", ("nfc",)),
    (0x04CC, 0x2533): KnownReader("PN533", ("nfc",)),
    (0x04E6, 0x5591): KnownReader("SCL3711", ("nfc",)),
    (0x072F, 0x2200): KnownReader("ACR122U", ("nfc", "pcsc")),
}


def usb_id(path: str) -> tuple[int, int] | None:
    """(vendor, product) of an nfcpy path naming them (`usb:054c:0dc8`), None for any other path."""
    parts = path.split(":")
    if len(parts) != 3 or parts[0] != "usb" or not all(len(p) == 4 for p in parts[1:]):
        return None  # usb, usb:054c, usb:BUS:DEV (three digits each), tty:..., udp:...
    try:
        return int(parts[1], 16), int(parts[2], 16)
    except ValueError:
        return None


def unsupported_model(spec: str) -> ReaderError | None:
    """The error for a spec naming a USB reader its back-end cannot drive (`nfc:usb:054c:0dc8`: an RC-S300
    under nfcpy), None otherwise. Checked when the config loads and when a reader is opened."""
    name, _, arg = spec.partition(":")
    ids = usb_id(arg) if name == "nfc" else None
    known = KNOWN_READERS.get(ids) if ids else None
    if known is None or name in known.backends:
        return None
    usable = " or ".join(f"backend = {b}" for b in known.backends)
    return ReaderError(f"the {known.model} ({arg.partition(':')[2]}) works only with {usable}: "
                       f"the {name} back-end cannot drive it", Cause.UNSUPPORTED_MODEL,
                       model=known.model, backends=", ".join(known.backends))


def spec_metavar() -> str:
    """`pcsc|nfc[:PATH]|sim[:SCENARIO]`: the CLI metavar."""
    return "|".join(b.grammar for b in BACKENDS)


def spec_choices() -> str:
    """`pcsc, nfc[:PATH] or sim[:SCENARIO]`: for sentences (error texts, comments)."""
    grammars = [b.grammar for b in BACKENDS]
    return ", ".join(grammars[:-1]) + f" or {grammars[-1]}" if len(grammars) > 1 else grammars[0]


def spec_help() -> str:
    """One line per back-end: `grammar: help` (the `--reader` help)."""
    return "; ".join(f"{b.grammar}: {b.help}" for b in BACKENDS)


def find_backend(spec: str) -> Backend:
    """The row for `spec`'s name part; ReaderError naming the spec and the valid ones otherwise."""
    name = spec.partition(":")[0]
    for backend in BACKENDS:
        if backend.name == name:
            return backend
    raise ReaderError(f"unknown reader back-end {spec!r}: use {spec_choices()}")


def open_reader(spec: str, name: str = "", options: ProbeOptions | None = None, *,
                load_scenario: Callable[[str], object] | None = None) -> Reader:
    """A back-end from a spec (`pcsc`, `nfc[:PATH]`, `sim[:SCENARIO]`); `name` picks a reader by substring.

    `options`: the rule table's probe options (default `ProbeOptions()`); `load_scenario`: the kiosk's
    scenario loader, needed for `sim:SCENARIO`. Raises ReaderError for an unknown back-end, a back-end whose
    driver is missing, a reader model the back-end cannot drive (`unsupported_model`), or a bad argument
    (the message says what to do). Opening touches no device.
    """
    backend = find_backend(spec)
    refused = unsupported_model(spec)
    if refused is not None:
        raise refused
    request = OpenRequest(arg=spec.partition(":")[2], name=name, options=options or ProbeOptions(),
                          load_scenario=load_scenario)
    return backend.load().open(request)
