"""What people type and where output goes: full-width digits (a Japanese IME) and a closed pipe (`| head`)."""

from __future__ import annotations

import subprocess
import sys

from kiosk.catalogue import load_catalogue, normalize_code
from kiosk.cli import main


def test_full_width_digits_are_normalised():
    assert normalize_code("０２１") == "021" and normalize_code(" 021\u3000") == "021"
    catalogue = load_catalogue()
    assert catalogue.get("０２１").code == "021"
    assert catalogue.nearest("０１５") == catalogue.nearest("015")


def test_catalogue_show_accepts_full_width_digits(capsys):
    assert main(["catalogue", "show", "０２１", "--lang", "en"]) == 0
    assert capsys.readouterr().out.startswith("021")


def test_closed_pipe_exits_quietly():
    """`kiosk catalogue list | head`: the reader is gone before we write; no traceback, SIGPIPE's exit code."""
    proc = subprocess.Popen([sys.executable, "-m", "kiosk", "catalogue", "list"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # nobody reads: every write fails with EPIPE
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr
