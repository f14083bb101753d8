"""`kiosk demo` with no display (the README's first command): the scripted tour through the real runtime."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from kiosk.vocabulary import SCREENS

pytestmark = [pytest.mark.ui, pytest.mark.slow]


def test_demo_without_a_display_saves_every_screen_in_japanese_and_english_and_prints_events(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    out = tmp_path / "shots"
    process = subprocess.run(
        [sys.executable, "-m", "kiosk", "demo", "--out", str(out), "--state-dir", str(tmp_path / "state"),
         "--broker", "mqtt://127.0.0.1:9"],  # nothing listens there: events stay in the outbox
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    shots = sorted(out.glob("*.png"))
    shown = {(p.stem.split("-", 2)[1], p.stem.split("-", 2)[2]) for p in shots}
    assert shown == {(lang, screen) for lang in ("ja", "en") for screen in SCREENS}
    assert all(p.read_bytes()[:4] == b"\x89PNG" and p.stat().st_size > 5000 for p in shots)
    events = [line.split("  ", 1) for line in process.stdout.splitlines() if "/event/" in line]
    kinds = [topic.rsplit("/", 1)[1] for topic, _ in events]
    assert {"precheck", "lookup", "call", "call_acknowledged", "call_resolved", "outage_entered"} <= set(kinds)
    outcomes = {json.loads(data)["outcome"] for (topic, data) in events if topic.endswith("/precheck")}
    assert {"mynumber_card", "smartphone_iphone", "not_mynumber"} <= outcomes
