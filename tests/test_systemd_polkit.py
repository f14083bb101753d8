"""systemd/polkit/50-kiosk.rules evaluated by a JavaScript engine with polkit's rule API stubbed: the kiosk
user may use pcscd and (re)start kiosk.service, nobody else gains anything."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parent.parent / "systemd" / "polkit" / "50-kiosk.rules"

HARNESS = """
const fs = require("fs");
const rules = [];
const polkit = { addRule: (rule) => rules.push(rule), Result: { YES: "yes", NO: "no" } };
eval(fs.readFileSync(process.argv[1], "utf8"));
const decide = ([id, user, details]) => {
    const action = { id, lookup: (key) => details[key] };
    for (const rule of rules) {
        const result = rule(action, { user });
        if (result !== undefined) return result;
    }
    return "polkit default";
};
console.log(JSON.stringify(JSON.parse(process.argv[2]).map(decide)));
"""


def _node() -> str:
    """Playwright's bundled Node (a test dependency), else a system one."""
    try:
        import playwright

        bundled = Path(playwright.__file__).parent / "driver" / "node"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    node = shutil.which("node")
    if node is None:
        pytest.skip("no JavaScript engine (playwright's node or nodejs) installed")
    return node


CASES = [
    (("org.debian.pcsc-lite.access_pcsc", "kiosk", {}), "yes"),
    (("org.debian.pcsc-lite.access_card", "kiosk", {"reader": "SONY RC-S300"}), "yes"),
    (("org.debian.pcsc-lite.access_pcsc", "www-data", {}), "polkit default"),
    (("org.freedesktop.systemd1.manage-units", "kiosk", {"unit": "kiosk.service", "verb": "restart"}), "yes"),
    (("org.freedesktop.systemd1.manage-units", "kiosk", {"unit": "kiosk.service", "verb": "start"}), "yes"),
    (("org.freedesktop.systemd1.manage-units", "kiosk", {"unit": "ssh.service", "verb": "restart"}), "polkit default"),
    (("org.freedesktop.systemd1.manage-units", "kiosk", {"unit": "kiosk.service", "verb": "enable"}),
     "polkit default"),
    (("org.freedesktop.systemd1.manage-units", "pi", {"unit": "kiosk.service", "verb": "restart"}), "polkit default"),
    (("org.freedesktop.systemd1.manage-unit-files", "kiosk", {}), "polkit default"),
]


def test_rules_grant_exactly_what_the_kiosk_needs():
    result = subprocess.run(
        [_node(), "-e", HARNESS, str(RULES), json.dumps([case for case, _ in CASES])],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [expected for _, expected in CASES]
