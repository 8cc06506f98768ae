"""The records of held tunnels that other processes of the user read (``list -o wide``
names the address of a tunnel a notebook or ``arkouda-k8s forward`` holds)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from arkouda_k8s import inventory

KEY = ("https://127.0.0.1:6443", "default", "rec")
ADDRESS = ("127.0.0.1", 40123)


@pytest.fixture(autouse=True)
def own_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Records under this test's folder, not the user's shared one."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    return tmp_path / f"arkouda-k8s-{os.getuid()}" / "tunnels"


def test_a_record_being_rewritten_is_never_taken_for_a_broken_one() -> None:
    """A holder writes its record again (each tunnel start) while another process
    reads: the reader never sees half a record, so it never removes a live holder's
    record as broken (before: it read an empty file now and then and deleted it)."""
    inventory._record_tunnel(KEY, ADDRESS)
    stop = threading.Event()

    def rewrite() -> None:
        while not stop.is_set():
            inventory._record_tunnel(KEY, ADDRESS)

    writer = threading.Thread(target=rewrite, daemon=True)
    writer.start()
    answers = []
    try:
        end = time.monotonic() + 3
        while time.monotonic() < end and len(answers) < 20_000:
            answers.append(inventory.held_tunnel(*KEY))
    finally:
        stop.set()
        writer.join(10)
    missed = sum(1 for a in answers if a != ADDRESS)
    assert missed == 0, f"{missed} of {len(answers)} reads found no tunnel"
    inventory._forget_tunnel(KEY)
    assert inventory.held_tunnel(*KEY) is None


def test_a_dead_holders_record_does_not_live_on_in_a_process_that_reuses_its_pid(
    own_records: Path,
) -> None:
    """A holder killed outright (a kernel restarted with SIGKILL) leaves its record;
    pids are reused (32768 of them on many machines): a later process with that pid
    must not make the dead holder's tunnel look held."""
    code = (
        "import os, sys\n"
        "from arkouda_k8s import inventory\n"
        f"inventory._record_tunnel({KEY!r}, {ADDRESS!r})\n"
        "os._exit(0)  # no cleanup, as when killed\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    (record,) = own_records.glob("*.json")
    # The kernel hands the dead holder's pid to another process: the record now names
    # a live pid (here: a process started after the holder ended, which took far more
    # than the start clock's 10 ms grain to import the package).
    other = subprocess.Popen(["sleep", "60"])
    try:
        content = json.loads(record.read_text())
        content["pid"] = other.pid
        record.write_text(json.dumps(content))
        assert inventory.held_tunnel(*KEY) is None
        assert not record.exists(), "the stale record is removed"
    finally:
        other.kill()
        other.wait()


def test_the_holders_own_record_is_found_and_forgotten() -> None:
    inventory._record_tunnel(KEY, ADDRESS)
    assert inventory.held_tunnel(*KEY) == ADDRESS
    inventory._forget_tunnel(KEY)
    assert inventory.held_tunnel(*KEY) is None
