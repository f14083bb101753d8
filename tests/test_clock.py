"""A Pi boots with yesterday's clock until NTP steps it: wall-clock jumps must neither fire nor stall any timeout,
and events say whether the clock was synchronised."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from kiosk import clock

JUMP = """
import json, sys, time
from kiosk.outbox import Outbox
from kiosk.sdnotify import Watchdog
box = Outbox(sys.argv[1], cap=100)
box.put("call", "t/call", lambda seq: b"c", ttl=900)
box.flush()
wall, mono = time.time(), time.monotonic()
with open(sys.argv[2], "w") as jump:
    jump.write(sys.argv[3])  # NTP steps the wall clock
while abs(time.time() - wall) < 3600 and time.monotonic() - mono < 5:
    pass  # no sleep: libfaketime's nanosleep refuses a monotonic it does not fake
[row] = box.pending()
print(json.dumps({"wall": time.time() - wall, "mono": time.monotonic() - mono,
                  "expiry": row.expiry_left(time.time())}))
"""


def test_synchronized_reads_the_kernel_state():
    assert clock.synchronized() in (True, False, None)
    assert set(clock.clock_state()) == {"synchronized"}


@pytest.mark.parametrize("step", ["+5h", "-5h"])
def test_a_wall_clock_jump_neither_expires_nor_prolongs_a_queued_call(tmp_path, step):
    """libfaketime steps the wall clock mid-run (CLOCK_MONOTONIC untouched, as NTP does)."""
    faketime = shutil.which("faketime")
    library = next((p for p in ("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
                                "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1") if os.path.exists(p)), None)
    if not faketime or not library:
        pytest.skip("faketime is not installed (tests/debian-packages.txt lists it)")
    step_file = tmp_path / "faketime"
    step_file.write_text("+0")
    env = {**os.environ, "LD_PRELOAD": library, "FAKETIME_TIMESTAMP_FILE": str(step_file),
           "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    result = subprocess.run([sys.executable, "-c", JUMP, str(tmp_path / "o.db"), str(step_file), step],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert abs(seen["wall"]) > 4 * 3600  # the wall clock really jumped
    assert 0 <= seen["mono"] < 3600  # the monotonic clock did not
    assert 890 <= seen["expiry"] <= 900  # the call's MQTT expiry counts real seconds, not the jump
