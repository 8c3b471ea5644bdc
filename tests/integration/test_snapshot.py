"""Warm start: a booted VM snapshotted once, new VMs restored from it.

The snapshot is made once per module (a cold boot and the agent asking the
VMM for it); every test restores from it. In the portable host the
snapshot is written to, and restored from, a file the portable host sees
as a disk.
"""
import errno
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT, children, msb
from msbvm import MsbError, VM

INITRD = ROOT / "build" / "tests" / "guest" / "agent-test.cpio"
MEM = 256


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    d = tmp_path_factory.mktemp("snap")
    os.environ["MSB_HOME"] = str(d / "home")
    path = d / "vm.snap"
    vm = VM(mem_mib=MEM, initrd=INITRD, snapshot_to=path, cold=True)
    try:
        st, out, _ = vm.run(["echo", "cold"])
        assert out == b"cold\n"
        vm.snapshot()
    finally:
        vm.destroy()
    assert path.exists()
    assert not list(d.glob("vm.snap.tmp.*"))  # the temporary name is gone
    return path


def test_restore_gives_a_working_agent(snapshot):
    vm = VM(mem_mib=MEM, restore_from=snapshot)
    try:
        st, out, err = vm.run(["sh", "-c", "echo warm; exit 4"])
        assert (st.code, out, err) == (4, b"warm\n", b"")
        assert vm.stop() == 0
    finally:
        vm.destroy()


def test_restored_vms_are_independent(snapshot):
    before = sha256(snapshot)
    a = VM(mem_mib=MEM, restore_from=snapshot)
    b = VM(mem_mib=MEM, restore_from=snapshot)
    try:
        rnd = "head -c 16 /dev/urandom | od -An -tx1"
        ra = a.run(["sh", "-c", rnd])[1]
        rb = b.run(["sh", "-c", rnd])[1]
        assert ra and rb and ra != rb
        # each has its own hostname, not the snapshot's
        assert a.hostname != b.hostname
        for v in (a, b):
            assert v.run(["hostname"])[1] == v.hostname.encode() + b"\n"
        for v in (a, b):  # the clock is the host's, not the snapshot's
            assert abs(int(v.run(["date", "+%s"])[1]) - time.time()) < 120
        # memory one guest writes is its own
        assert a.run(["sh", "-c", "echo a-was-here > /tmp/mark"])[0].code == 0
        st, out, _ = b.run(["cat", "/tmp/mark"])
        assert st.code != 0
        assert a.run(["cat", "/tmp/mark"])[1] == b"a-was-here\n"
    finally:
        a.destroy()
        b.destroy()
    assert sha256(snapshot) == before  # the snapshot file never changes


def test_hostname_is_the_callers(snapshot):
    vm = VM(mem_mib=MEM, restore_from=snapshot, hostname="api-1.test")
    try:
        assert vm.run(["hostname"])[1] == b"api-1.test\n"
    finally:
        vm.destroy()
    for bad in ("-x", "a b", "x" * 65, "a/b"):
        with pytest.raises(MsbError) as e:
            VM(mem_mib=MEM, restore_from=snapshot, hostname=bad)
        assert e.value.errno == errno.EINVAL and "bad hostname" in e.value.msg


WAIT_DISK = ("i=0; while [ \"$(cat /sys/block/vda/size)\" = 0 ]; do "
             "i=$((i+1)); [ $i -gt 3000 ] && exit 9; sleep 0.02; done")


def test_ten_restored_sandboxes_each_see_their_own_disk(snapshot, tmp_path):
    """Ten VMs restored from one snapshot at once, each with its own disk
    bound after the restore: each sees its disk's size and contents, and
    writes only its own file."""
    n = 10
    files = []
    for k in range(n):
        f = tmp_path / f"disk{k}.img"
        f.write_bytes(f"disk-{k}\n".encode().ljust(4096 * (k + 1), b"."))
        files.append(f)
    results, errors = {}, []

    def one(k):
        try:
            vm = VM(mem_mib=MEM, restore_from=snapshot, disks=[(files[k], True)])
            try:
                script = (WAIT_DISK + "; echo $(cat /sys/block/vda/serial); cat /sys/block/vda/size; "
                          f"head -c 7 /dev/vda; printf 'wrote-{k}' | "
                          "dd of=/dev/vda bs=512 seek=1 conv=notrunc,fsync 2>/dev/null")
                st, out, err = vm.run(["sh", "-c", script])
                results[k] = (st.code, out, err)
            finally:
                vm.destroy()
        except Exception as e:  # reported below, with the others
            errors.append((k, e))

    threads = [threading.Thread(target=one, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for k in range(n):
        code, out, err = results[k]
        assert code == 0, (k, out, err)
        assert out == f"disk0\n{8 * (k + 1)}\ndisk-{k}\n".encode(), (k, out)
        data = files[k].read_bytes()
        assert data[512:512 + 7] == f"wrote-{k}".encode()[:7], k
        assert len(data) == 4096 * (k + 1)


def test_read_only_disk_refuses_writes(snapshot, tmp_path):
    f = tmp_path / "ro.img"
    f.write_bytes(b"x" * 8192)
    vm = VM(mem_mib=MEM, restore_from=snapshot, disks=[(f, False)])
    try:
        st, out, err = vm.run(["sh", "-c", WAIT_DISK + "; head -c 4 /dev/vda; "
                               "echo y | dd of=/dev/vda conv=fsync 2>/dev/null"])
        assert out.startswith(b"xxxx") and st.code != 0, (st.code, out, err)
    finally:
        vm.destroy()
    assert f.read_bytes() == b"x" * 8192


def test_cold_and_warm_give_the_same_results(snapshot):
    cmd = ["sh", "-c", "ls / ; cat /proc/mounts; nproc; id; hostname"]
    warm = VM(mem_mib=MEM, restore_from=snapshot, hostname="same")
    cold = VM(mem_mib=MEM, initrd=INITRD, cold=True, hostname="same")
    try:
        assert warm.run(cmd)[1:] == cold.run(cmd)[1:]
    finally:
        warm.destroy()
        cold.destroy()


def test_corrupted_snapshot_is_refused(snapshot, tmp_path):
    bad = tmp_path / "bad.snap"
    data = bytearray(snapshot.read_bytes()[:8 << 20])
    data[4096 + 200] ^= 0xFF  # inside the state
    with open(bad, "wb") as f:
        f.write(data)
        f.truncate(snapshot.stat().st_size)
    with pytest.raises(MsbError) as e:
        VM(mem_mib=MEM, restore_from=bad, timeout_ms=120000)
    assert "damaged" in e.value.msg, e.value.msg


def test_truncated_snapshot_is_refused(snapshot, tmp_path):
    bad = tmp_path / "short.snap"
    with open(bad, "wb") as f:
        f.write(snapshot.read_bytes()[:1 << 20])
    with pytest.raises(MsbError) as e:
        VM(mem_mib=MEM, restore_from=bad, timeout_ms=120000)
    assert "truncated" in e.value.msg or "not a complete" in e.value.msg, e.value.msg


def test_warm_start_by_default_uses_one_cached_snapshot(tmp_path):
    """The default start restores the shape's snapshot, made on first use,
    reused after, and made again when it is damaged."""
    os.environ["MSB_HOME"] = str(tmp_path / "home")
    cache = tmp_path / "home" / "snapshots"
    said = []
    a = VM(mem_mib=MEM, initrd=INITRD, progress=said.append)
    try:
        assert a.run(["echo", "one"])[1] == b"one\n"
    finally:
        a.destroy()
    # the first start says what takes its time, once
    assert said[0] == f"preparing a VM image for {MEM} MiB / 1 vCPU (first run only)", said
    assert said[1].startswith("VM image ready in "), said
    snaps = list(cache.glob("*/vm.snap"))
    assert len(snaps) == 1
    made = snaps[0].stat().st_mtime_ns
    said.clear()
    b = VM(mem_mib=MEM, initrd=INITRD, progress=said.append)
    try:
        assert b.run(["echo", "two"])[1] == b"two\n"
    finally:
        b.destroy()
    assert said == []
    assert snaps[0].stat().st_mtime_ns == made  # reused, not made again
    with open(snaps[0], "r+b") as f:  # damage the state
        f.seek(4096 + 300)
        f.write(b"\xff\xff")
    c = VM(mem_mib=MEM, initrd=INITRD)
    try:
        assert c.run(["echo", "three"])[1] == b"three\n"
    finally:
        c.destroy()
    assert snaps[0].stat().st_mtime_ns != made  # made again
    assert list(cache.glob("*/vm.snap.tmp.*")) == []


def test_killed_during_restore_leaves_no_process(snapshot):
    """The process holding the VM (msb-vmm, or the portable host's QEMU) is
    killed while msb_vm_start() starts it from the snapshot: a clear error,
    and nothing left."""
    before = children()
    done = threading.Event()

    def killer():
        while not done.is_set():
            new = children() - before
            if new:
                time.sleep(0.3)  # into the start, before the agent answers
                for p in new:
                    try:
                        os.kill(int(p), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                return
            time.sleep(0.005)

    t = threading.Thread(target=killer)
    t.start()
    try:
        with pytest.raises(MsbError) as e:
            vm = VM(mem_mib=MEM, restore_from=snapshot)
            try:  # the kill came after the start: the next call sees it
                t.join()
                vm.run(["true"])
            finally:
                vm.destroy()
        assert e.value.msg
    finally:
        done.set()
        t.join()
    assert children() - before == set()


def phost_files(snap):
    ram = sorted(snap.parent.glob(snap.name + ".phost-*.ram"))
    state = sorted(snap.parent.glob(snap.name + ".phost-*.state"))
    return ram, state


def test_portable_host_starts_from_its_own_snapshot(snapshot, monkeypatch):
    """A restore in the portable host restores the portable host too: its
    snapshot is made beside the VM's on first use and reused after; the
    hosts started from it write their own copies of its memory."""
    monkeypatch.setenv("MSB_HOST", "portable")
    for old in snapshot.parent.glob(snapshot.name + ".phost-*"):
        old.unlink()  # made by an earlier test: see this one made
    said = []
    a = VM(mem_mib=MEM, restore_from=snapshot, progress=said.append)
    try:
        assert a.run(["echo", "one"])[1] == b"one\n"
    finally:
        a.destroy()
    assert said[0] == "preparing the portable host for it (first run only)", said
    assert said[1].startswith("portable host ready in "), said
    ram, state = phost_files(snapshot)
    assert len(ram) == 1 and len(state) == 1
    made = state[0].stat()
    before = sha256(ram[0])
    b = VM(mem_mib=MEM, restore_from=snapshot)
    c = VM(mem_mib=MEM, restore_from=snapshot)
    try:
        # 32 MiB written in each guest land in its portable host's memory
        fill = "head -c 33554432 /dev/urandom > /tmp/fill && md5sum < /tmp/fill"
        sb, sc = b.run(["sh", "-c", fill])[1], c.run(["sh", "-c", fill])[1]
        assert sb and sc and sb != sc
        assert b.run(["echo", "two"])[1] == b"two\n"
    finally:
        b.destroy()
        c.destroy()
    again = phost_files(snapshot)[1][0].stat()
    assert (again.st_ino, again.st_mtime_ns) == (made.st_ino, made.st_mtime_ns)  # reused
    assert sha256(ram[0]) == before  # never written through
    assert not list(snapshot.parent.glob("*.XXXXXX")) and not [
        p for p in snapshot.parent.iterdir() if ".phost-" in p.name and p.suffix not in
        (".ram", ".state", ".phost-empty")]  # no temporary files left


def test_damaged_portable_host_snapshot_is_made_again(snapshot, monkeypatch):
    """A portable host snapshot whose state file was damaged is refused by
    its checksum, made again, and the start still succeeds."""
    monkeypatch.setenv("MSB_HOST", "portable")
    vm = VM(mem_mib=MEM, restore_from=snapshot)
    vm.destroy()
    state = phost_files(snapshot)[1][0]
    data = bytearray(state.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of QEMU's device state
    state.write_bytes(data)
    vm = VM(mem_mib=MEM, restore_from=snapshot)
    try:
        assert vm.run(["echo", "fine"])[1] == b"fine\n"
    finally:
        vm.destroy()
    assert phost_files(snapshot)[1][0].read_bytes() != bytes(data)  # made again


def run_on_small_disk(tmp_path, size, script, *args, **env):
    """Runs @script with a tmpfs of @size mounted at its first argument, in
    a user namespace (no root needed); the rest of @args follow, then this
    directory for msbvm. Returns (RESULT line, stdout)."""
    small = tmp_path / "small"
    small.mkdir()
    path = tmp_path / "script.py"
    path.write_text(script)
    here = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
         f'mount -t tmpfs -o size={size} none "$1" && shift && exec "$@"', "sh",
         str(small), sys.executable, str(path), str(small), *map(str, args), here],
        env=dict(os.environ, MSB_HOME=str(tmp_path / "home"), **env),
        capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    result = [l for l in r.stdout.splitlines() if l.startswith("RESULT")]
    assert result, r.stdout + r.stderr
    return result[0], r.stdout


FULL_DISK_SCRIPT = """
import os, sys
sys.path.insert(0, sys.argv[3])
from msbvm import MsbError, VM
snap = os.path.join(sys.argv[1], "vm.snap")
vm = VM(mem_mib=256, initrd=sys.argv[2], snapshot_to=snap, cold=True)
try:
    # 40 MB of guest memory in use: more than the disk takes
    st, _, _ = vm.run(["sh", "-c", "head -c 40000000 /dev/urandom > /tmp/big"])
    assert st.code == 0
    try:
        vm.snapshot()
        print("RESULT snapshot written")
    except MsbError as e:
        print("RESULT error:", e.msg)
finally:
    vm.destroy()
print("LEFT", sorted(os.listdir(sys.argv[1])))
"""


def test_full_disk_while_snapshotting_leaves_no_file(tmp_path):
    """The snapshot goes to a 24 MiB filesystem (a tmpfs mounted in a user
    namespace, so no root is needed): a clear error and no file left,
    partial or temporary."""
    result, out = run_on_small_disk(tmp_path, "24m", FULL_DISK_SCRIPT, INITRD)
    assert "the disk holding it is full" in result, out
    assert "LEFT []" in out, out


PHOST_FULL_SCRIPT = """
import os, subprocess, sys
sys.path.insert(0, sys.argv[3])
from msbvm import MsbError, VM
snap = os.path.join(sys.argv[1], "vm.snap")
subprocess.run(["cp", "--sparse=always", sys.argv[2], snap], check=True)
try:
    VM(mem_mib=256, restore_from=snap).destroy()
    print("RESULT started")
except MsbError as e:
    print("RESULT error:", e.msg)
print("LEFT", sorted(os.listdir(sys.argv[1])))
"""


def test_full_disk_while_making_the_portable_host_snapshot(snapshot, tmp_path):
    """The VM snapshot fits on the disk, the portable host's snapshot (its
    RAM, ~130 MiB) does not: a clear error, only the VM snapshot left."""
    result, out = run_on_small_disk(tmp_path, "64m", PHOST_FULL_SCRIPT, snapshot,
                                    MSB_HOST="portable")
    assert "portable host's snapshot" in result and "the disk holding it is full" in result, out
    assert "LEFT ['vm.snap', 'vm.snap.phost.lock']" in out, out  # no disks: no placeholder


def test_msb_prepare_makes_a_shape_once(env):
    """`msb prepare` makes the default image's snapshot (agent only) for a
    shape ahead of its first sandbox, says so, and does nothing when it is
    there."""
    r = msb(env, "prepare", "--memory", "256")
    assert r.returncode == 0, r.stderr
    assert "msb: preparing a VM image for 256 MiB / 1 vCPU (first run only)" in r.stderr
    assert "is ready" in r.stderr
    home = env["MSB_HOME"]
    snaps = [d for d in os.listdir(os.path.join(home, "snapshots"))
             if os.path.exists(os.path.join(home, "snapshots", d, "vm.snap"))]
    assert len(snaps) == 1 and snaps[0].endswith("-256mib-1cpu"), snaps
    r = msb(env, "prepare", "--memory", "256")
    assert r.returncode == 0 and "was ready already" in r.stderr, r.stderr
    assert "preparing" not in r.stderr
    r = msb(env, "prepare", "--memory", "lots")
    assert r.returncode == 2 and "bad argument --memory" in r.stderr, r.stderr
