"""Pre-check latency and idle CPU on the real pcscd + vpcd rig (root; `python bench/bench_precheck.py [N]`).

For each of N presentations of a virtual My Number card, two watchers wait on the same pcscd at once:
a bare `SCardGetStatusChange` loop (the floor: pcscd polls vpcd every 400 ms) and the kiosk's PcscReader +
classify. Printed: insert → event p50/p95 for both, our overhead above the floor per presentation, and the
process CPU while PcscReader waits for a card (target ≤ 1 % of a core).
"""

from __future__ import annotations

import queue
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from smartcard import scard

from hardware.readers.cards import PROFILES
from hardware.readers.contract import Presented, ProbeOptions, ReaderStatus
from hardware.readers.pcsc import PcscReader
from kiosk.precheck import classify
from tests.rigs.pcsc import LOCK_PATH, Pcscd, VirtualCard, pcsc_rig_missing, reader_name, wait_until_empty

IDLE_SECONDS = 10.0
POLL_SECONDS = 0.4  # pcscd asks vpcd for the ATR this often


def bare_loop(reader: str, seen: queue.Queue, stop: threading.Event, contexts: list) -> None:
    """The floor: the least a PC/SC client can do to notice a card."""
    _, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    contexts.append(context)
    state, present = scard.SCARD_STATE_UNAWARE, False
    while not stop.is_set():
        result, states = scard.SCardGetStatusChange(context, 5000, [(reader, state)])
        if result != scard.SCARD_S_SUCCESS:
            continue
        now = time.perf_counter()
        state = states[0][1] & ~scard.SCARD_STATE_CHANGED
        here = bool(state & scard.SCARD_STATE_PRESENT)
        if here and not present:
            seen.put(now)
        present = here
    scard.SCardReleaseContext(context)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main(count: int = 60) -> int:
    reason = pcsc_rig_missing()
    if reason:
        print(f"bench_precheck: skipped: {reason}", file=sys.stderr)
        return 0
    import fcntl

    with open(LOCK_PATH, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        daemon = Pcscd(Path(tempfile.mkdtemp(prefix="bench-pcscd-")) / "pcscd.log")
        daemon.start()
        try:
            return run(count)
        finally:
            daemon.stop()


def run(count: int) -> int:
    reader = reader_name(0)
    stop = threading.Event()

    # Idle CPU first: only PcscReader waits for a card.
    ours: queue.Queue = queue.Queue()
    pcsc = PcscReader(name=reader, options=ProbeOptions(flap_window_seconds=0.01))  # back-to-back is the point here
    ours_thread = threading.Thread(target=pcsc.run, args=(ours.put, stop), daemon=True)
    ours_thread.start()
    assert isinstance(ours.get(timeout=10), ReaderStatus)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    time.sleep(IDLE_SECONDS)
    idle_cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0) * 100

    bare: queue.Queue = queue.Queue()
    contexts: list = []
    bare_thread = threading.Thread(target=bare_loop, args=(reader, bare, stop, contexts), daemon=True)
    bare_thread.start()
    time.sleep(0.5)

    card = VirtualCard(PROFILES["mynumber_card"])
    floor, total, overhead = [], [], []
    for _ in range(count):
        t_insert = time.perf_counter()
        card.insert()
        t_bare = bare.get(timeout=10) - t_insert
        while True:
            event = ours.get(timeout=10)
            if isinstance(event, Presented):
                verdict = classify(event.observation)
                t_ours = time.perf_counter() - t_insert
                break
        assert verdict.outcome == "mynumber_card", verdict
        floor.append(t_bare * 1000)
        total.append(t_ours * 1000)
        overhead.append((t_ours - t_bare) * 1000)
        card.remove()
        wait_until_empty(0)
        time.sleep(random.uniform(0.0, POLL_SECONDS))  # arrive at any phase of pcscd's poll

    stop.set()
    for context in contexts:
        scard.SCardCancel(context)
    ours_thread.join(5)
    bare_thread.join(6)

    print(f"presentations: {count} (My Number card on pcscd + vpcd)")
    for label, times, note in (("bare SCardGetStatusChange (floor):", floor, ""),
                               ("PcscReader + probe + classify:", total, ""),
                               ("overhead above the floor:", overhead, "  (target p95 <= 20 ms)")):
        print(f"{label:35}p50 {statistics.median(times):7.1f} ms  p95 {percentile(times, .95):7.1f} ms{note}")
    print("largest overheads (ms):", " ".join(f"{v:.1f}" for v in sorted(overhead)[-8:]))
    print(f"ratio ours/floor at p50: {statistics.median(total) / statistics.median(floor):.3f}")
    print(f"CPU while waiting for a card: {idle_cpu:.3f} % of a core over {IDLE_SECONDS:.0f} s (target <= 1 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 60))
