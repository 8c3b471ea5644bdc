"""Host selection and the portable host, through the msb command users run.

Every VM here is real: msb doctor starts msb-kvm-smoke, whose guest enters
user mode, makes a SYSCALL that must reach CPL0 and talks through the byte
stream, natively or inside the portable host (QEMU TCG with SVM + kvm_amd).
"""
import os
import pathlib
import signal
import subprocess
import time

import pytest

from conftest import MSB, msb

GREETING = "msb-kvm-smoke: hello from a KVM guest; its user-mode SYSCALL reached CPL0"


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_for(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def run_dirs(env):
    d = pathlib.Path(env["MSB_HOME"]) / "run"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def sockets_under(path):
    return [p for p in pathlib.Path(path).rglob("*") if p.is_socket()]


def test_selftest_choice_matches_this_machine(env, native_ok):
    ok, why = native_ok
    r = msb(env, "info")
    assert r.returncode == 0, r.stderr
    if ok:
        assert "host mode:     native" in r.stdout
        assert "passed the self-test" in r.stdout
    else:
        assert "host mode:     portable" in r.stdout
        assert "using the portable host (software emulation, slower)" in r.stdout
        if os.path.exists("/sys/module/kvm_pvm"):
            assert "/dev/kvm here is PVM and cannot run standard guests" in r.stdout
    # msb says it once, when it decides; the second time the answer is cached
    assert "msb: " in r.stderr
    r2 = msb(env, "info")
    assert r2.returncode == 0
    assert "self-test result cached" in r2.stdout
    assert r2.stderr == ""


def test_native_forced_where_kvm_cannot_fails_clearly(env, native_ok):
    ok, _ = native_ok
    if ok:
        pytest.skip("this /dev/kvm runs standard guests, so MSB_HOST=native works here")
    env["MSB_HOST"] = "native"
    t0 = time.monotonic()
    r = msb(env, "doctor", timeout=120)
    assert r.returncode == 1
    assert "MSB_HOST=native, but" in r.stderr
    assert "MSB_HOST=portable" in r.stderr
    assert time.monotonic() - t0 < 60  # refused by the self-test, not by a hang
    assert run_dirs(env) == []


def test_bad_msb_host(env):
    env["MSB_HOST"] = "fast"
    r = msb(env, "info")
    assert r.returncode == 1
    assert "MSB_HOST=fast is not one of native, portable, auto" in r.stderr


def test_doctor_portable_runs_a_kvm_guest_through_the_stream(env):
    env["MSB_HOST"] = "portable"
    r = msb(env, "doctor")
    assert r.returncode == 0, r.stdout + r.stderr
    # the guest's own output, relayed: KVM guest -> msb-kvm-smoke stdout ->
    # virtio-serial port -> QEMU chardev socket -> msb
    assert GREETING in r.stdout
    assert 'the guest answered "MSB DOCTOR PING"' in r.stdout
    assert "portable host" in r.stdout
    # QEMU's and the portable host's output went to the log, not to the terminal
    assert "msb-phost-init" not in r.stdout + r.stderr
    assert "qemu" not in (r.stdout + r.stderr).lower()
    # nothing is left behind after a clean run
    assert run_dirs(env) == []
    logs = pathlib.Path(env["MSB_HOME"]) / "log"
    assert not logs.exists() or list(logs.iterdir()) == []


def test_doctor_native(env, native_ok):
    ok, why = native_ok
    if not ok:
        pytest.skip(f"native mode cannot run here: {why}")
    env["MSB_HOST"] = "native"
    r = msb(env, "doctor")
    assert r.returncode == 0, r.stdout + r.stderr
    assert GREETING in r.stdout


def start_doctor(env):
    env["MSB_HOST"] = "portable"
    p = subprocess.Popen([str(MSB), "doctor"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    qemu = wait_for(lambda: qemu_child(p.pid), 60, "msb to start QEMU")
    return p, qemu


def qemu_child(pid):
    for c in children(pid):
        try:
            with open(f"/proc/{c}/cmdline", "rb") as f:
                if f.read().startswith(b"qemu-system-x86_64"):
                    return c
        except FileNotFoundError:
            pass
    return None


def test_kill_qemu_is_reported_and_cleaned_up(env):
    p, qemu = start_doctor(env)
    time.sleep(1)
    os.kill(qemu, signal.SIGKILL)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 1
    assert "the portable host stopped unexpectedly (QEMU was killed by signal 9)" in err
    # the message points at a log that exists
    log = err.split("see ")[-1].strip()
    assert os.path.isfile(log), err
    assert not alive(qemu)
    assert run_dirs(env) == []


def test_kill_msb_leaves_no_process_or_socket(env):
    p, qemu = start_doctor(env)
    time.sleep(1)
    stale = run_dirs(env)
    assert len(stale) == 1
    p.kill()
    p.wait()
    # QEMU dies with msb (parent-death signal), whatever state it was in
    wait_for(lambda: not alive(qemu), 10, "QEMU to die with msb")
    assert sockets_under(env["MSB_HOME"]) == []
    # the next msb start removes what the killed one left, and works
    r = msb(env, "doctor")
    assert r.returncode == 0, r.stderr
    assert stale[0] not in run_dirs(env)
    assert run_dirs(env) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopping_msb_stops_the_portable_host(env, sig):
    p, qemu = start_doctor(env)
    time.sleep(0.5)
    p.send_signal(sig)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 128 + sig
    assert "the test VM is stopped too" in err
    assert not alive(qemu)
    # a clean stop leaves nothing: no run dir, no log, no socket
    assert run_dirs(env) == []
    logs = pathlib.Path(env["MSB_HOME"]) / "log"
    assert not logs.exists() or list(logs.iterdir()) == []
    assert sockets_under(env["MSB_HOME"]) == []


def test_two_portable_hosts_at_once(env):
    env["MSB_HOST"] = "portable"
    procs = [subprocess.Popen([str(MSB), "doctor"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    wait_for(lambda: all(qemu_child(p.pid) for p in procs), 60, "both QEMUs")
    results = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, out + err
        assert GREETING in out
    assert run_dirs(env) == []


def test_missing_portable_image_is_a_clear_error(env, tmp_path):
    env["MSB_HOST"] = "portable"
    env["MSB_SHARE_DIR"] = str(tmp_path / "nowhere")
    r = msb(env, "doctor")
    assert r.returncode == 1
    assert "the portable host image is not installed" in r.stderr
    assert run_dirs(env) == []


def test_qemu_failure_is_reported_with_its_reason(env, tmp_path):
    fake = tmp_path / "qemu"
    fake.write_text("#!/bin/sh\necho 'qemu-system-x86_64: -accel tcg: error: no way' >&2\nexit 1\n")
    fake.chmod(0o755)
    env["MSB_HOST"] = "portable"
    env["MSB_QEMU"] = str(fake)
    r = msb(env, "doctor", timeout=60)
    assert r.returncode == 1
    assert "the portable host did not start: qemu-system-x86_64: -accel tcg: error: no way" in r.stderr


def test_missing_qemu_is_reported(env, tmp_path):
    env["MSB_HOST"] = "portable"
    env["MSB_QEMU"] = str(tmp_path / "no-such-qemu")
    r = msb(env, "doctor", timeout=60)
    assert r.returncode == 1
    assert "the portable host did not start: msb: error: cannot run" in r.stderr
    assert "No such file or directory" in r.stderr


def test_help_on_every_command(env):
    for args in (["--help"], ["info", "--help"], ["doctor", "--help"], ["prepare", "--help"]):
        r = msb(env, *args)
        assert r.returncode == 0 and "usage: msb" in r.stdout, args
    r = msb(env, "nonsense")
    assert r.returncode == 2 and "unknown command" in r.stderr
