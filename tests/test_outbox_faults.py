"""kiosk.outbox on a worn SD card: torn pages, truncated and zeroed files, a full or read-only filesystem,
files this user may not write, another process holding the write lock. Never an exception, never a restart
loop; damaged files are kept and their readable rows salvaged; storage faults hold events in memory."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

import kiosk
from kiosk.outbox import Outbox

PAGE = 4096
ROWS = 3000


def fill(path: Path, rows: int = ROWS, kind: str = "precheck") -> None:
    """An outbox of `rows` events, checkpointed into the main file, closed."""
    box = Outbox(path, cap=100_000)
    for _ in range(rows):
        box.put(kind, f"t/{kind}", lambda seq: f'{{"seq": {seq}, "pad": "{"x" * 200}"}}'.encode())
    assert box.flush()
    box.close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def root_page(path: Path, name: str) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0]


def zero_page(path: Path, number: int) -> None:
    data = bytearray(path.read_bytes())
    data[(number - 1) * PAGE:number * PAGE] = bytes(PAGE)
    path.write_bytes(data)


def kept(path: Path) -> list[Path]:
    return sorted(p for p in path.parent.glob(path.name + ".unreadable-*") if not p.name.endswith(("-wal", "-shm")))


def still_works(box: Outbox) -> None:
    """A staff call is stored and read back after the recovery."""
    seq = box.put("call", "t/call", lambda seq: b"call")
    assert box.flush()
    assert seq in [s.seq for s in box.pending(after_seq=seq - 1)]
    assert box.stats().storage == "ok"


@pytest.mark.parametrize("where", ["middle", "events_root", "index_only"])
def test_torn_page_is_set_aside_and_its_readable_rows_salvaged(tmp_path, where):
    db = tmp_path / "o.db"
    fill(db)
    pages = db.stat().st_size // PAGE
    number = {"middle": pages // 2, "events_root": root_page(db, "events"),
              "index_only": root_page(db, "events_by_priority")}[where]
    zero_page(db, number)
    damaged = db.read_bytes()

    box = Outbox.open(db, cap=100_000)

    [report] = box.take_recovery_reports()
    [aside] = kept(db)
    assert aside.read_bytes() == damaged  # kept as it was, renamed with the time
    assert report.kept_as == aside.name and report.cause == "damaged"
    stored = box.pending(limit=100_000)
    assert report.salvaged == len(stored) and report.lost == ROWS - len(stored)
    if where == "middle":  # one leaf page of rows is gone, every other row is there
        assert ROWS - 40 < len(stored) < ROWS
    else:  # the root or an index page: a table scan / page scan still reads every row
        assert len(stored) == ROWS and report.lost == 0
    assert [s.seq for s in stored] == sorted(s.seq for s in stored)
    assert all(s.payload.startswith(b'{"seq": %d,' % s.seq) for s in stored)
    still_works(box)
    assert box.put("call", "t", lambda seq: b"") > ROWS  # seq continues above the old file's


def test_truncated_file_and_zeroed_header_are_recovered(tmp_path):
    for name, damage in (("truncated", lambda data: data[:len(data) // 2]),
                         ("header", lambda data: bytes(100) + data[100:])):
        db = tmp_path / f"{name}.db"
        fill(db)
        db.write_bytes(damage(db.read_bytes()))
        box = Outbox.open(db, cap=100_000)
        [report] = box.take_recovery_reports()
        assert len(kept(db)) == 1
        assert 0 < report.salvaged == len(box.pending(limit=100_000)) <= ROWS
        still_works(box)


def test_garbage_wal_is_ignored_and_rows_kept(tmp_path):
    db = tmp_path / "o.db"
    fill(db, 50)
    Path(f"{db}-wal").write_bytes(os.urandom(PAGE * 3))
    box = Outbox.open(db, cap=100)
    assert len(box.pending(limit=1000)) == 50
    still_works(box)


def damage_under_a_running_outbox(db: Path, box: Outbox) -> None:
    """Tear a table leaf page behind the open connection's back, then let another connection commit, so
    the running outbox drops its page cache and meets the damage on its next read or write."""
    zero_page(db, db.stat().st_size // PAGE // 2)
    with sqlite3.connect(db, isolation_level=None) as other:
        other.execute("INSERT INTO meta VALUES ('poke', 1) ON CONFLICT (key) DO UPDATE SET value = value + 1")


@pytest.mark.parametrize("where", ["drain", "delete", "insert"])
def test_damage_met_while_running_recovers_instead_of_raising(tmp_path, where):
    db = tmp_path / "o.db"
    fill(db)
    box = Outbox.open(db, cap=100_000)
    damage_under_a_running_outbox(db, box)
    if where == "drain":
        seen = [s.seq for s in box.pending(limit=100_000)]  # no exception, whatever the page cache held
    elif where == "delete":
        box.delete(range(1, ROWS + 1, 7))
    else:
        box.put("call", "t/call", lambda seq: b"call")
        box.flush()
    rows = box.pending(limit=100_000)  # after recovery: the salvaged rows
    [report] = box.take_recovery_reports()
    assert report.salvaged > ROWS // 2 and len(kept(db)) == 1
    if where == "drain":
        assert seen  # the drain got rows, before or after the recovery
    assert [s.seq for s in rows] == sorted(s.seq for s in rows)
    still_works(box)


# --- storage faults: full, read-only, locked, files of another user ----------------------------------------

@pytest.fixture
def small_fs():
    """A 1 MiB tmpfs (root only): the real ENOSPC and a real read-only remount."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    where = Path(tempfile.mkdtemp(prefix="outbox-fs-"))
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M,mode=0755", "tmpfs", str(where)],
                            capture_output=True, text=True)
    if result.returncode:
        where.rmdir()
        pytest.skip(f"mount refused: {result.stderr.strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)
    where.rmdir()


def test_full_disk_holds_events_in_memory_and_writes_them_out_later(small_fs):
    box = Outbox(small_fs / "o.db", cap=100_000, memory_cap=50)
    filler = small_fs / "filler"
    with open(filler, "wb") as out, pytest.raises(OSError):
        while True:  # fill the filesystem to the last block
            out.write(b"\0" * 65536)
            out.flush()
    seqs = [box.put("precheck", "t", lambda seq: b"p" * 2000) for _ in range(200)]
    calls = [box.put("call", "t/call", lambda seq: b"c" * 2000) for _ in range(60)]
    assert not box.flush(timeout=5)
    stats = box.stats()
    assert stats.storage == "full" and stats.held > 0
    held = {s.seq for s in box.pending(limit=10_000)}
    assert set(calls) <= held  # a staff call is never dropped for a storage reason
    assert len(held - set(calls)) < len(seqs)  # the bounded memory queue gave up older prechecks
    assert box.take_drop_report()["precheck"] > 0
    filler.unlink()
    assert box.flush(timeout=10)
    assert box.stats().storage == "ok" and box.stats().held == 0
    box.close()
    assert set(calls) <= {s.seq for s in Outbox(small_fs / "o.db", cap=100_000).pending(limit=10_000)}


def test_read_only_remount_holds_events_and_writes_them_after_remount(small_fs):
    """ext4 remounts a failing SD card read-only and the kiosk restarts on it: it serves, holds, catches up."""
    box = Outbox(small_fs / "o.db", cap=100_000)
    old = box.put("heartbeat", "t", lambda seq: b"h")
    box.close()
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    try:
        box = Outbox(small_fs / "o.db", cap=100_000)
        call = box.put("call", "t/call", lambda seq: b"c")
        assert not box.flush(timeout=3)
        assert box.stats().storage == "read_only" and box.stats().held == 1
        assert call in [s.seq for s in box.pending()]
        assert call > old  # numbered above the old file's events although it could not be read
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)
    assert box.flush(timeout=10) and box.stats().storage == "ok"
    box.close()
    assert [s.seq for s in Outbox(small_fs / "o.db", cap=100).pending()] == [old, call]


HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("COMMIT")
"""


def test_another_process_holding_the_write_lock(tmp_path):
    db = tmp_path / "o.db"
    box = Outbox(db, cap=1000)
    first = box.put("precheck", "t", lambda seq: b"p")
    assert box.flush()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        calls = [box.put("call", "t/call", lambda seq: b"c") for _ in range(5)]  # put() never touches the file
        assert not box.flush(timeout=3)
        assert box.stats().storage == "locked" and box.stats().held == 5
        assert [s.seq for s in box.pending()] == [first, *calls]  # publishable from memory meanwhile
    finally:
        holder.communicate("\n", timeout=30)
    assert box.flush(timeout=10) and box.stats().storage == "ok"
    box.close()
    assert [s.seq for s in Outbox(db, cap=1000).pending()] == [first, *calls]


# --- files another user owns: run the outbox as an unprivileged user -------------------------------------

AS_USER = """
import json, sys
from kiosk.outbox import Outbox
box = Outbox(sys.argv[1], cap=1000)
call = box.put("call", "t/call", lambda seq: b"c")
written = box.flush(timeout=5)
print(json.dumps({"written": written, "storage": box.stats().storage, "call": call,
                  "pending": [s.seq for s in box.pending(limit=1000)],
                  "reports": [r.as_dict() for r in box.take_recovery_reports()]}))
"""


def run_as_nobody(db: Path) -> dict:
    import json
    if os.geteuid() != 0:
        pytest.skip("switching to an unprivileged user needs root")
    python = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"  # the venv's may sit in /root
    if not os.path.exists(python):
        pytest.skip(f"no {python} (the test's Python version) that an unprivileged user may run")
    paths = [str(Path(kiosk.__file__).resolve().parents[1]), sysconfig.get_paths()["purelib"]]
    result = subprocess.run([python, "-c", AS_USER, str(db)], capture_output=True, text=True, user="nobody",
                            env={"PYTHONPATH": os.pathsep.join(paths), "PATH": "/usr/bin:/bin"}, cwd="/",
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def shared_dir():
    """A directory the unprivileged user owns (pytest's tmp_path is root's alone)."""
    where = Path(tempfile.mkdtemp(prefix="outbox-user-"))
    shutil.chown(where, "nobody")
    yield where
    shutil.rmtree(where)


@pytest.mark.parametrize("how", ["mode_0400", "wal_of_another_user"])
def test_files_this_user_may_not_write_are_set_aside_and_salvaged(shared_dir, how):
    db = shared_dir / "o.db"
    fill(db, 20)
    shutil.chown(db, "nobody")
    if how == "mode_0400":
        db.chmod(0o400)
    else:  # someone ran the kiosk as root once: the -wal is root's
        with sqlite3.connect(db) as other:
            other.execute("PRAGMA journal_mode=WAL")
            other.execute("INSERT INTO meta VALUES ('poke', 1)")
            other.execute("PRAGMA wal_autocheckpoint=0")
        Path(f"{db}-wal").touch()
        os.chmod(f"{db}-wal", 0o600)
    outcome = run_as_nobody(db)
    assert outcome["written"] and outcome["storage"] == "ok"
    [report] = outcome["reports"]
    assert report["cause"] == "permission" and report["salvaged"] == 20 and report["lost"] == 0
    assert outcome["call"] in outcome["pending"] and len(outcome["pending"]) == 21
    assert len(kept(db)) == 1
