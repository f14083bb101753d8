"""Shipped scenarios for the simulated reader (`kiosk precheck --reader sim:NAME`, `kiosk demo --scenario NAME`).

One TOML file per scenario (`<name>.toml`, the `hardware.readers.sim.Scenario` fields: `description`,
`repeat`, `[[steps]]` with `present` / `hold` / `wait` / `unplug` in seconds). Every preset has a
scenario of its own name (tests/test_precheck.py checks it), plus `demo` and `unplug`.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from hardware.readers.contract import ReaderError
from hardware.readers.sim import Scenario
from kiosk.tomldata import load_toml


def scenario_dir() -> Path:
    """Where the shipped scenario files are."""
    return Path(str(importlib.resources.files(__name__)))


def load_scenario(name_or_path: str) -> Scenario:
    """A scenario by shipped name (`kiosk/scenarios/NAME.toml`) or by file path (anything with a suffix).

    Raises ReaderError naming the file (and the shipped names when it does not exist), or the file, field
    and value when it does not validate (an unknown preset, a repeating scenario that takes no time).
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = scenario_dir() / f"{name_or_path}.toml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in scenario_dir().glob("*.toml")))
        raise ReaderError(f"{path}: no such scenario (shipped: {known})")
    return load_toml(path, Scenario, ReaderError, "scenario")
