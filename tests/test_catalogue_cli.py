"""`kiosk catalogue list|show|validate|import`, in process and from a non-editable install in a fresh venv."""

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from kiosk.cli import main
from kiosk.paths import catalogue_root

REPO = Path(__file__).resolve().parent.parent


def run(capsys, *argv):
    code = main(["catalogue", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_text_and_json(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    assert "021  patient  -       スマートフォンの認識不可" in out
    assert "901  staff    outage  オンライン資格確認等システムの障害発生" in out
    code, out, _ = run(capsys, "list", "--json")
    listing = json.loads(out)
    assert code == 0 and len(listing["codes"]) == 31 and listing["version"]
    by_code = {row["code"]: row for row in listing["codes"]}
    assert by_code["009"]["outage"] is True and by_code["009"]["audience"] == "staff"
    assert by_code["021"]["call_staff"] is False


def test_show_021_in_english_reads_as_patient_guidance(capsys):
    code, out, _ = run(capsys, "show", "021", "--lang", "en")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "021  Your smartphone could not be read"
    assert lines[1:4] == ["  1. Take your phone out of its case.",
                          "  2. If you have an Android phone, turn the screen off.",
                          "  3. Hold the back of the phone, where it reads cards, over the card reader, "
                          "slightly above it."]
    assert "For staff" in out and "スマートフォンケースを外す" in out


def test_show_fills_parameters_for_display(capsys):
    code, out, _ = run(capsys, "show", "003", "--lang", "en")
    assert code == 0 and "After n more wrong tries" in out and "{remaining}" not in out


def test_show_json_with_facility_filter(capsys):
    code, out, _ = run(capsys, "show", "001", "--facility", "pharmacy", "--json", "--lang", "en")
    shown = json.loads(out)
    assert code == 0
    assert shown["guidance"]["lang"] == "en" and len(shown["guidance"]["steps"]) <= 3
    assert shown["outage"] is True and shown["conditions"][0]["seed_rows"] == [4]
    assert list(shown["conditions"][0]["steps"]) == ["common", "pharmacy_eprescription"]
    code, out, _ = run(capsys, "show", "001", "--facility", "clinic", "--json")
    assert list(json.loads(out)["conditions"][0]["steps"]) == ["common", "clinic_eprescription", "clinic_ekarte"]


def test_show_unknown_language_falls_back_to_japanese(capsys):
    code, out, err = run(capsys, "show", "021", "--lang", "xx")
    assert code == 0 and out.startswith("021  スマートフォンが読み取れませんでした")
    assert "no guidance in 'xx'" in err


@pytest.mark.parametrize("typed, nearest", [("015", "014, 019"), ("951", "950, 952"), ("21", "021"), ("0x9", "009"),
                                            ("abc", "known codes run from 001 to 952")])
def test_show_unknown_or_malformed_code_exits_2_naming_the_nearest(capsys, typed, nearest):
    code, out, err = run(capsys, "show", typed)
    assert code == 2 and out == ""
    assert nearest in err


def test_validate_ok_and_broken(capsys, tmp_path):
    code, out, _ = run(capsys, "validate")
    assert code == 0 and out.startswith("OK: catalogue") and "31 codes" in out
    broken = tmp_path / "catalogue"
    shutil.copytree(catalogue_root(), broken, ignore=shutil.ignore_patterns("fonts", "voices"))
    codes = json.loads((broken / "codes.json").read_text(encoding="utf-8"))
    codes["950"]["message"] = "職員は障害を確認してください。"
    (broken / "codes.json").write_text(json.dumps(codes, ensure_ascii=False), encoding="utf-8")
    code, _, err = run(capsys, "validate", str(broken))
    assert code == 1 and "code 950: field message" in err
    (broken / "codes.json").write_text("[", encoding="utf-8")
    code, _, err = run(capsys, "validate", str(broken))
    assert code == 1 and "codes.json" in err and "not valid JSON" in err


def test_validate_notices_a_stale_verbatim_part(capsys, tmp_path):
    stale = tmp_path / "catalogue"
    shutil.copytree(catalogue_root(), stale, ignore=shutil.ignore_patterns("fonts", "voices"))
    verbatim = stale / "source" / "verbatim.json"
    verbatim.write_text(verbatim.read_text(encoding="utf-8").replace('"rows"', '"rows" ', 1), encoding="utf-8")
    code, _, err = run(capsys, "validate", str(stale))
    assert code == 1 and "out of date" in err


def test_import_check(capsys):
    code, out, _ = run(capsys, "import", "--check")
    assert code == 0 and "up to date" in out


@pytest.mark.slow
def test_installs_every_data_file_and_works_from_any_directory_after_a_non_editable_install(tmp_path):
    """pip install . (no deps, offline) into a fresh venv; run the installed `kiosk` from an unrelated folder."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for name in ("kiosk", "hardware", "catalogue"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    # the dependencies come from the test venv, but not its editable `kiosk` (.pth files of an added path are not run)
    (site / "_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                                "--no-build-isolation", "--no-index", str(source)],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    shipped = {f"{package}/{path.relative_to(source / package)}"
               for package in ("kiosk", "hardware") for path in (source / package).rglob("*") if path.is_file()}
    shipped |= {f"kiosk/catalogue_data/{path.relative_to(source / 'catalogue')}"
                for path in (source / "catalogue").rglob("*") if path.is_file()}
    missing = sorted(name for name in shipped if not (site / name).is_file())
    assert not missing, f"files not shipped in the installed package: {missing}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    kiosk = env_dir / "bin" / "kiosk"

    def installed_kiosk(*argv):
        return subprocess.run([kiosk, "catalogue", *argv], cwd=elsewhere, capture_output=True, text=True, timeout=120)

    where = subprocess.run([python, "-c", "import kiosk.paths; print(kiosk.paths.catalogue_root())"], cwd=elsewhere,
                           capture_output=True, text=True, timeout=60)
    assert where.stdout.strip().startswith(str(site)), where
    shown = installed_kiosk("show", "021", "--lang", "en")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("021  Your smartphone could not be read")
    validated = installed_kiosk("validate")
    assert validated.returncode == 0 and str(site) in validated.stdout, validated.stderr
    unknown = installed_kiosk("show", "015")
    assert unknown.returncode == 2 and "014, 019" in unknown.stderr
