"""proc.run: live output, the whole output back, and a deadline that leaves nothing running.

Interrupts are tested against real process trees in tests/integration/test_cancel.py.
"""

from __future__ import annotations

import os
import sys
import time

import pytest

from aks_ray import proc
from aks_ray.errors import DeadlineExceeded


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_output_is_echoed_live_and_returned_whole(capfd):
    seen = []
    code = "import sys; print('one'); sys.stderr.write('two\\n'); sys.stdout.write('three'); sys.exit(4)"

    result = proc.run(python(code), timeout=30, on_line=seen.append)

    assert result.returncode == 4
    assert result.output == "one\ntwo\nthree"
    assert seen == ["one", "two", "three"]
    assert "one\ntwo\nthree\n" in capfd.readouterr().err


def test_quiet_output_is_returned_but_not_echoed(capfd):
    # Built at run time: the command line itself (which the log shows) does not hold the output.
    result = proc.run(python("print('quiet' + '-output')"), timeout=30, echo=False)
    assert result.output == "quiet-output\n"
    assert "quiet-output" not in capfd.readouterr().err


def test_bytes_that_are_not_utf8_do_not_break_the_reading():
    result = proc.run(python("import sys; sys.stdout.buffer.write(b'caf\\xc3\\xa9 \\xff end\\n')"), timeout=30, echo=False)
    assert result.output == "café \ufffd end\n"


def test_a_deadline_ends_the_program_and_its_children(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    code = (
        "import subprocess, sys, time; "
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(60)"
    )
    started = time.monotonic()

    with pytest.raises(DeadlineExceeded) as caught:
        proc.run(python(code), timeout=2)

    assert "did not finish within 2 s" in caught.value.message
    assert time.monotonic() - started < 20
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and alive(grandchild):
        time.sleep(0.1)
    assert not alive(grandchild)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_no_descriptor_is_left_open_after_a_run():
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        proc.run(python("print('x')"), timeout=30, echo=False)
    assert len(os.listdir("/proc/self/fd")) == before


# A group like a Ray head's: a leader and a child that ignore SIGTERM, a child that exits on it (after a moment).
STUBBORN_GROUP = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
POLITE = 'import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: (time.sleep(0.5), sys.exit(0))); time.sleep(60)'
STUBBORN = 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'
polite = subprocess.Popen([sys.executable, '-c', POLITE])
stubborn = subprocess.Popen([sys.executable, '-c', STUBBORN])
open(sys.argv[1], 'w').write(f'{polite.pid} {stubborn.pid}')
time.sleep(60)
"""


def start_group(tmp_path):
    import subprocess

    pids = tmp_path / "pids"
    process = subprocess.Popen([sys.executable, "-c", STUBBORN_GROUP, str(pids)], start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (pids.exists() and len(pids.read_text().split()) == 2):
        time.sleep(0.05)
    time.sleep(0.5)  # both children have installed their handlers
    return process, [process.pid, *map(int, pids.read_text().split())]


def test_a_group_that_settles_is_killed_without_waiting_out_the_grace(tmp_path):
    process, pids = start_group(tmp_path)
    started = time.monotonic()

    proc.terminate_group(process, grace=60, settle=0.5)

    # The polite child took its half second, then nothing changed: the rest was killed, not waited 60 s for.
    assert time.monotonic() - started < 30
    assert not any(alive(pid) for pid in pids), "nothing of the group runs when it returns"
    assert proc.living_members(process.pid) == frozenset()


def test_without_settle_the_members_that_exit_on_sigterm_are_given_the_grace(tmp_path):
    process, pids = start_group(tmp_path)
    started = time.monotonic()

    proc.terminate_group(process, grace=2)

    assert time.monotonic() - started >= 2, "the stubborn members were waited for until the grace ran out"
    assert not any(alive(pid) for pid in pids)
