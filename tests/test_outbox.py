"""kiosk.outbox: durable, ordered, capped with priority dropping, replay memory for commands."""

import os
import signal
import subprocess
import sys
import time

from kiosk.outbox import Outbox


def put(box, kind, n=1):
    return [box.put(kind, f"t/{kind}", lambda seq: f"{kind}:{seq}".encode()) for _ in range(n)]


def test_put_pending_delete_in_order(tmp_path):
    box = Outbox(tmp_path / "o.db", cap=1000)
    seqs = put(box, "precheck", 5)
    assert seqs == [1, 2, 3, 4, 5]
    assert [s.payload for s in box.pending()] == [f"precheck:{i}".encode() for i in seqs]
    assert [s.seq for s in box.pending(after_seq=3)] == [4, 5]
    box.delete([1, 2, 99])
    assert [s.seq for s in box.pending()] == [3, 4, 5]
    assert box.stats().backlog == 3


def test_seq_and_events_persist_across_reopen(tmp_path):
    box = Outbox(tmp_path / "o.db", cap=1000)
    put(box, "call", 3)
    box.delete([1, 2, 3])
    box.close()
    box = Outbox(tmp_path / "o.db", cap=1000)
    assert put(box, "call") == [4]  # seq keeps counting after the outbox emptied
    assert box.stats().backlog == 1


def test_cap_drops_lowest_priority_oldest_first_and_reports(tmp_path):
    box = Outbox(tmp_path / "o.db", cap=100)
    put(box, "call", 10)
    put(box, "precheck", 40)
    put(box, "heartbeat", 50)
    put(box, "precheck", 30)  # 30 over: all heartbeats would go before any precheck
    box.flush()  # the cap applies as the writer thread stores them
    kinds = [s.kind for s in box.pending(limit=1000)]
    assert kinds.count("heartbeat") == 20 and kinds.count("call") == 10 and kinds.count("precheck") == 70
    put(box, "call", 80)  # now 80 over: the 20 heartbeats, then the 60 oldest prechecks
    box.flush()
    pending = box.pending(limit=1000)
    assert [s.kind for s in pending].count("call") == 90 and len(pending) == 100
    assert [s.seq for s in pending] == sorted(s.seq for s in pending)
    stats = box.stats()
    assert stats.dropped == 110 and stats.backlog == 100
    assert box.take_drop_report() == {"heartbeat": 50, "precheck": 60}
    assert box.take_drop_report() == {}


def test_calls_dropped_only_when_nothing_else_is_left(tmp_path):
    box = Outbox(tmp_path / "o.db", cap=100)
    put(box, "call", 105)
    box.flush()
    assert box.take_drop_report() == {"call": 5}
    assert box.pending(limit=1)[0].seq == 6


def test_refused_and_errors_counted(tmp_path):
    box = Outbox(tmp_path / "o.db", cap=100)
    box.refused(2, "not authorised")
    assert (box.stats().refused, box.stats().last_error) == (2, "not authorised")
    box.note_error(None)
    assert box.stats().last_error is None


def test_seen_commands_survive_reopen(tmp_path):
    box = Outbox(tmp_path / "o.db", cap=100)
    assert box.remember_command("a") is True
    assert box.remember_command("a") is False
    box.close()
    assert Outbox(tmp_path / "o.db", cap=100).remember_command("a") is False


def test_expiry_left():
    from kiosk.outbox import Stored
    stored = Stored(1, "call", "t", b"", created=1000.0, ttl=900)
    assert stored.expiry_left(1100.0) == 800
    assert stored.expiry_left(5000.0) == 1
    assert Stored(1, "precheck", "t", b"", 0.0, None).expiry_left(5.0) is None


def test_unusable_path_keeps_events_in_memory_and_names_the_file(tmp_path):
    (tmp_path / "file").write_text("x")
    box = Outbox(tmp_path / "file" / "o.db", cap=100)
    stats = box.stats()
    assert stats.storage != "ok"
    assert put(box, "call") and [s.kind for s in box.pending()] == ["call"]  # held, still publishable
    assert box.stats().held == 1


def test_unreadable_outbox_is_set_aside_and_seq_stays_above_the_old_one(tmp_path, caplog):
    junk = tmp_path / "o.db"
    junk.write_bytes(b"not a database" * 100)
    box = Outbox.open(junk, cap=100)
    kept = list(tmp_path.glob("o.db.unreadable-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == b"not a database" * 100  # nothing thrown away
    assert put(box, "call")[0] > 1_700_000_000_000
    assert "moved it to" in caplog.text
    assert oct(junk.stat().st_mode & 0o777) == "0o600"
    [report] = box.take_recovery_reports()
    assert (report.salvaged, report.lost, report.kept_as) == (0, None, kept[0].name)


WRITER = """
import sys
from kiosk.outbox import Outbox
box = Outbox(sys.argv[1], cap=100000)
n = 0
while True:
    box.put("precheck", "t", lambda seq: str(seq).encode())
    n += 1
    if n % 50 == 0:
        box.flush()  # a burst as fast as the machine can go must not outrun the writer thread's memory bound
    if n == 200:
        print("ready", flush=True)
"""


def test_kill_9_loses_no_committed_event(tmp_path):
    db = tmp_path / "o.db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.2)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    box = Outbox(db, cap=100000)
    stored = box.pending(limit=1_000_000)
    assert len(stored) >= 200
    assert [s.seq for s in stored] == list(range(1, len(stored) + 1))  # no hole, no torn row
    assert all(s.payload == str(s.seq).encode() for s in stored)
    assert put(box, "call") == [len(stored) + 1]


def test_sync_fsyncs_the_write_ahead_log(tmp_path, monkeypatch):
    box = Outbox(tmp_path / "o.db", cap=100)
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd)))
    put(box, "call")
    box.sync()  # waits for the writer thread, then fsyncs
    assert synced == [str(tmp_path / "o.db-wal")]
    box.close()
    assert Outbox(tmp_path / "o.db", cap=100).stats().backlog == 1
