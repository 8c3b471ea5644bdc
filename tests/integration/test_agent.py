"""Commands in a real sandbox VM through msb-agent, driven by libmsb's API.

The guest is msb's kernel with tests/guest's initramfs: msb-agent as PID 1,
a static busybox for the commands, and the hostile-guest program. VMs boot
through the host mode msb chooses (the portable host on machines whose
/dev/kvm cannot run standard guests), so boots are dear: most tests share
one VM, and only those that end or break their VM boot their own.
"""
import hashlib
import os
import signal
import time

import pytest

from conftest import ROOT, children
import msbvm
from msbvm import MSB_STDERR, MSB_STDOUT, MsbError, VM

INITRD = ROOT / "build" / "tests" / "guest" / "agent-test.cpio"


def boot(**kw):
    kw.setdefault("mem_mib", 256)
    return VM(initrd=INITRD, **kw)


@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    os.environ["MSB_HOME"] = str(home)
    v = boot(cpus=2, mem_mib=512)
    yield v
    v.destroy()


def test_echo(vm):
    st, out, err = vm.run(["echo", "hello", "world"])
    assert (st.signaled, st.code, out, err) == (0, 0, b"hello world\n", b"")
    assert vm.agent.startswith("msb-agent ")


def test_exit_codes(vm):
    for code in (0, 1, 3, 255):
        st, _, _ = vm.run(["sh", "-c", f"exit {code}"])
        assert (st.signaled, st.code) == (0, code)


def test_killed_by_a_signal_inside(vm):
    st, _, _ = vm.run(["sh", "-c", "kill -TERM $$"])
    assert (st.signaled, st.signo) == (1, signal.SIGTERM)


def test_signal_from_the_host(vm):
    x = vm.exec(["sleep", "600"])
    try:
        x.signal(signal.SIGKILL)
        st = x.wait()
        assert (st.signaled, st.signo) == (1, signal.SIGKILL)
    finally:
        x.free()


def test_stderr_apart_from_stdout(vm):
    st, out, err = vm.run(["sh", "-c", "echo to-out; echo to-err >&2; echo more-out"])
    assert st.code == 0
    assert out == b"to-out\nmore-out\n"
    assert err == b"to-err\n"


def test_stdin_streamed_in(vm):
    data = os.urandom(3 << 20)  # beyond the initial credit: flow control works
    st, out, _ = vm.run(["sha256sum"], input=data)
    assert st.code == 0
    assert out.split()[0].decode() == hashlib.sha256(data).hexdigest()


def test_stdin_end_of_file(vm):
    st, out, _ = vm.run(["wc", "-c"], input=b"")
    assert (st.code, out.strip()) == (0, b"0")


def test_64_mib_of_output_arrive_byte_exact(vm):
    size = 64 << 20
    # seq's lines are all different: a lost, doubled or reordered chunk shows
    x = vm.exec(["sh", "-c", f"seq 1 20000000 | head -c {size}"])
    h, n = hashlib.sha256(), 0
    try:
        while True:
            stream, data = x.read(1 << 20)
            if not stream:
                break
            assert stream == MSB_STDOUT
            h.update(data)
            n += len(data)
        assert x.wait().code == 0
    finally:
        x.free()
    expect = hashlib.sha256()
    left, i = size, 1
    while left > 0:
        chunk = "".join(f"{j}\n" for j in range(i, i + 100000)).encode()[:left]
        expect.update(chunk)
        left -= len(chunk)
        i += 100000
    assert n == size
    assert h.hexdigest() == expect.hexdigest()


def test_two_execs_at_once(vm):
    # `yes` fills its stream and nobody reads it: flow control holds it back,
    # and the other command still runs to its end over the same connection
    noisy = vm.exec(["yes"])
    talker = vm.exec(["cat"], stdin=True)
    try:
        talker.write(b"ping\n")
        stream, data = talker.read()
        assert (stream, data) == (MSB_STDOUT, b"ping\n")
        talker.close_stdin()
        assert talker.read() == (0, b"")
        assert talker.wait().code == 0
        assert noisy.pid != talker.pid
        stream, data = noisy.read()
        assert stream == MSB_STDOUT and data.startswith(b"y\ny\n")
        noisy.signal(signal.SIGKILL)
        assert noisy.wait().signo == signal.SIGKILL
    finally:
        noisy.free()
        talker.free()


def test_cpus_and_memory(vm):
    _, out, _ = vm.run(["nproc"])
    assert out == b"2\n"
    _, out, _ = vm.run(["grep", "MemTotal", "/proc/meminfo"])
    kib = int(out.split()[1])
    assert 450 * 1024 < kib <= 512 * 1024


def test_cwd_env_and_user(vm):
    st, out, _ = vm.run(["sh", "-c", "pwd; echo $FOO; id -u; id -g"], cwd="/tmp",
                        env=["PATH=/bin", "FOO=bar baz"], uid=1000, gid=1001)
    assert st.code == 0
    assert out == b"/tmp\nbar baz\n1000\n1001\n"


def test_missing_program_is_a_clear_error(vm):
    with pytest.raises(MsbError) as e:
        vm.exec(["no-such-program"])
    assert e.value.errno == 2
    assert "no-such-program" in e.value.msg
    with pytest.raises(MsbError) as e:
        vm.exec(["true"], cwd="/no/such/dir")
    assert "/no/such/dir" in e.value.msg
    vm.ping()  # the VM is fine


def read_until(x, pattern):
    got = b""
    while pattern not in got:
        stream, data = x.read()
        assert stream, f"the stream ended before {pattern!r}: {got!r}"
        got += data
    return got


def test_terminal(vm):
    x = vm.exec(["sh"], tty=True, rows=30, cols=100, stdin=True)
    try:
        x.write(b"tty; stty size\n")
        first = read_until(x, b"30 100\r\n")
        assert b"/dev/pts/" in first
        x.resize(40, 120)
        x.write(b"stty size; exit 7\n")
        out, err = x.output()
        assert err == b""
        assert b"40 120" in out
        assert x.wait().code == 7
    finally:
        x.free()


def test_clock_set_from_the_host(vm):
    _, out, _ = vm.run(["date", "+%s"])
    assert abs(int(out) - time.time()) < 120


def test_guest_mounts(vm):
    _, out, _ = vm.run(["cat", "/proc/mounts"])
    for m in (b" /proc proc", b" /sys sysfs", b" /dev devtmpfs", b" /dev/pts devpts",
              b" /dev/shm tmpfs", b" /tmp tmpfs", b" /run tmpfs"):
        assert m in out


def test_shutdown_ends_the_vmm_with_status_0(env):
    os.environ["MSB_HOME"] = env["MSB_HOME"]
    v = boot()
    try:
        assert v.run(["true"])[0].code == 0
        assert v.stop() == 0
    finally:
        v.destroy()


def test_guest_poweroff_ends_the_vmm_with_status_0(env):
    os.environ["MSB_HOME"] = env["MSB_HOME"]
    v = boot()
    try:
        x = v.exec(["reboot", "-f"])
        with pytest.raises(MsbError) as e:
            x.output()
        assert "powered off" in e.value.msg
        assert v.stop() == 0
    finally:
        v.destroy()


def test_killing_the_vmm_leaves_no_process(env):
    os.environ["MSB_HOME"] = env["MSB_HOME"]
    before = children()  # the shared VM's process, if it runs
    v = boot()
    pid = v.pid
    try:
        x = v.exec(["sleep", "600"])
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(MsbError) as e:
            x.wait()
        assert "ended" in e.value.msg or "broke" in e.value.msg or "closed" in e.value.msg
        with pytest.raises(MsbError):
            v.exec(["true"])
    finally:
        v.destroy()
    # reaped, not a zombie; and nothing it started is left
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert children() - before == set()


def test_hostile_guest_cannot_crash_the_vmm(env):
    """A guest root drives the virtio-mmio device with bad register sequences,
    queues and descriptors: the VMM stops at most that device and then still
    ends cleanly when the guest resets."""
    os.environ["MSB_HOME"] = env["MSB_HOME"]
    v = boot()
    try:
        x = v.exec(["hostile"])
        with pytest.raises(MsbError):
            x.output()  # the device it attacks carries this connection
        assert v.stop() == 0
        log = open(v.log, errors="replace").read()
    finally:
        v.destroy()
    assert "hostile: done" in log
    assert "msb-vmm: virtio-vsock:" in log  # it saw the attacks and said so
    assert "msb-vmm: the guest shut down" in log
