"""The importer: the verbatim part regenerates byte for byte from the vendored seed; odd seeds fail clearly."""

import hashlib
import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.catalogue_import import SEED_NAME, VERBATIM_NAME, SeedFormatError, import_seed, main, render
from kiosk.paths import catalogue_root

HEADER = ("コード\tエラー区分 (見出し)\tメッセージ内容\tお調べください\t原因・対処法\t資料のリンク先"
          "\t機器・システム 障害発生有無 (暫定運用要否)")


def row(*cells):
    return "\t".join(cells)


def test_regenerating_gives_the_committed_bytes():
    seed = (catalogue_root() / SEED_NAME).read_text(encoding="utf-8")
    committed = (catalogue_root() / VERBATIM_NAME).read_bytes()
    assert render(import_seed(seed)).encode("utf-8") == committed


def test_verbatim_records_the_seed_hash_and_keeps_cells_byte_for_byte():
    seed_bytes = (catalogue_root() / SEED_NAME).read_bytes()
    verbatim = json.loads((catalogue_root() / VERBATIM_NAME).read_text(encoding="utf-8"))
    assert verbatim["source"]["sha256"] == hashlib.sha256(seed_bytes).hexdigest()
    lines = seed_bytes.decode("utf-8").split("\n")
    for code, entry in verbatim["codes"].items():
        first = lines[entry["rows"][0] - 1].split("\t")
        assert first[:3] == [code, entry["heading"], entry["message"]]
        for condition in entry["conditions"]:
            for index, number in enumerate(condition["rows"]):
                cells = lines[number - 1].split("\t")
                assert cells[3:] == [condition[name][index] for name in ("check", "cause", "documents", "outage")]


def test_cli_check_and_write(tmp_path):
    assert main(["--check"]) == 0
    out = tmp_path / "verbatim.json"
    assert main(["--out", str(out)]) == 0
    assert out.read_bytes() == (catalogue_root() / VERBATIM_NAME).read_bytes()
    out.write_text("{}", encoding="utf-8")
    assert main(["--out", str(out), "--check"]) == 1


def test_runs_as_a_module(tmp_path):
    out = tmp_path / "v.json"
    done = subprocess.run([sys.executable, "-m", "kiosk.catalogue_import", "--out", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "31 codes" in done.stdout


def test_continuations_repeats_and_second_conditions():
    seed = "\n".join([
        "", HEADER,
        row("001", "【a】t", "m", "check1", "cause1-part1", "doc1", ""),
        "", HEADER,
        row("", "", "", "", "part2", "doc2", "○"),          # continues condition 1 across the page break
        row("", "", "", "check2", "cause2", "", "-"),        # a second condition of 001
        row("002", "【a】u", "m2", "c", "x", "d", "-"),
        row("002", "【a】u", "m2", "c", "x", "other doc", "○"),  # the same code repeated
    ])
    codes = import_seed(seed)["codes"]
    assert list(codes) == ["001", "002"]
    first, second = codes["001"]["conditions"]
    assert first == {"rows": [3, 6], "check": ["check1", ""], "cause": ["cause1-part1", "part2"],
                     "documents": ["doc1", "doc2"], "outage": ["", "○"]}
    assert second["rows"] == [7] and second["check"] == ["check2"]
    assert [c["documents"] for c in codes["002"]["conditions"]] == [["d"], ["other doc"]]


@pytest.mark.parametrize("lines, message", [
    ([HEADER, "001\tonly three"], r"seed.txt:2: expected 7 tab-separated cells, got 2"),
    ([row("001", "h", "m", "c", "x", "d", "-")], r"seed.txt:1: data row before the header row"),
    ([HEADER, row("", "", "", "c", "x", "d", "-")], r"seed.txt:2: continuation row before any code"),
    ([HEADER, row("1a", "h", "m", "c", "x", "d", "-")], r"seed.txt:2: code cell '1a' is not three digits"),
    ([HEADER, row("001", "h", "m", "c", "x", "d", "-"), row("001", "h2", "m", "c", "x", "d", "-")],
     r"seed.txt:3: code 001 repeated with a different heading"),
    ([HEADER, row("001", "h", "m", "c", "x", "d", "-"), row("002", "h", "m", "c", "x", "d", "-"),
      row("001", "h", "m", "c", "x", "d", "-")], r"seed.txt:4: code 001 appears again"),
    ([HEADER, row("001", "h", "m", "c", "x", "d", "-"), row("", "h", "", "c", "x", "d", "-")],
     r"seed.txt:3: row without a code has a heading"),
    (["", ""], r"no header row"),
])
def test_malformed_seeds_name_the_line(lines, message):
    with pytest.raises(SeedFormatError, match=message):
        import_seed("\n".join(lines), source_name="seed.txt")


def test_unreadable_seed_is_exit_2(tmp_path, capsys):
    bad = tmp_path / "seed.txt"
    bad.write_bytes(b"\xff\xfe not utf-8")
    assert main(["--seed", str(bad), "--out", str(tmp_path / "o.json")]) == 2
    assert "catalogue import:" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()


@given(st.lists(st.lists(st.text(alphabet="01a○-\t <p>", max_size=6), min_size=1, max_size=8), max_size=8))
@settings(max_examples=200, deadline=None)
def test_any_odd_seed_either_imports_or_raises_seed_format_error(rows):
    text = "\n".join([HEADER, *("\t".join(cells) for cells in rows)])
    try:
        verbatim = import_seed(text)
    except SeedFormatError:
        return
    assert json.loads(render(verbatim)) == verbatim
