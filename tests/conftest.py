"""Shared test setup. Rigs (real pcscd + vpcd, mosquitto, Kivy offscreen, Chromium) live in tests/rigs/."""

import os
import sys
from pathlib import Path

# tests/ itself is importable so rig modules can be shared (tests.rigs.*).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Kivy reads these at import time; set them before any test imports it.
os.environ.setdefault("KIVY_NO_ARGS", "1")
os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")
os.environ.setdefault("KIVY_NO_FILELOG", "1")
os.environ.setdefault("KIVY_USE_DEFAULTCONFIG", "1")
os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")

# each rig module adds itself, e.g. "tests.rigs.pcsc"
pytest_plugins: list[str] = ["tests.rigs.mosquitto", "tests.rigs.console", "tests.rigs.pcsc", "tests.rigs.kivy",
                             "tests.rigs.nfc_udp", "tests.rigs.postgres", "tests.rigs.homeassistant",
                             "tests.rigs.scard_faults"]
