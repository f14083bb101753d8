"""Where the shipped data lives, installed or in a source checkout."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def catalogue_root() -> Path:
    """The catalogue data folder (`catalogue/` in the repo, `kiosk/catalogue_data` when installed)."""
    # catalogue_data is a namespace package (data only, no __init__.py): take its folder, not a resource reader.
    spec = importlib.util.find_spec("kiosk.catalogue_data")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parent.parent / "catalogue"  # source checkout: the folder beside the package
