"""Where the shipped data lives, installed or in a source checkout."""

from __future__ import annotations

import importlib.resources
from pathlib import Path


def catalogue_root() -> Path:
    """The catalogue data folder (`catalogue/` in the repo, `kiosk/catalogue_data` when installed)."""
    try:
        return Path(str(importlib.resources.files("kiosk.catalogue_data")))
    except ModuleNotFoundError:  # source checkout or editable install: the folder beside the package
        return Path(__file__).resolve().parent.parent / "catalogue"
