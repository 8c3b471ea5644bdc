"""Project sandboxes through the real binary: msb run / msr, shell, up, down,
status, log, clean, with real microVMs.

The image is the tests' busybox, served by a local docker-registry. Every VM
here has one shape (memory 256, 1 vCPU), and the module's tests share its
warm snapshot (the `home` fixture), so each start is a restore. A project
sandbox keeps its writable layer (.msb/sandboxes/NAME/rw.ext4) between
runs, which several tests check by what a second run finds.
"""
import hashlib
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import MSB, pty_read_until, pty_winsize
from registry import *  # noqa: F401,F403


@pytest.fixture(scope="module")
def image(registry, oci_images):
    return push(registry, busybox_image(oci_images), "latest", "tp/busybox")


@pytest.fixture
def vm():
    if not os.path.exists("/dev/kvm"):
        pytest.skip("this machine has no /dev/kvm")


def project(tmp_path, text):
    d = tmp_path / "proj"
    d.mkdir()
    (d / "Sandboxfile").write_text(text)
    return d


def run(env, d, *args, timeout=300, **kw):
    """msb ARGS in directory @d (the project is found from there)."""
    return subprocess.run([str(MSB), *args], env=env, cwd=d, capture_output=True, text=True,
                          timeout=timeout, **kw)


APP = """\
# a comment, to show nothing needs the file to be bare
sandboxes:
  app:
    image: "{image}"
    memory: 256
    envs: ["FROM_ENVS=envs", "BOTH=from-envs"]
    env_file: ".env"
    workdir: "/work"
    scripts:
      start: 'echo "start $0 [$*] $FROM_FILE $FROM_ENVS $BOTH $QUOTED $(pwd) $HOSTNAME"'
      keep: 'mkdir -p /data && echo line >> /data/kept && wc -l < /data/kept'
      fail: 'exit 3'
      stdin: 'tr a-z A-Z'
  cmd_only:
    image: "{image}"
    memory: 256
    command: ["echo", "from command"]
  two:
    image: "{image}"
    memory: 256
    cpus: 2
    shell: "/bin/ash"
"""


def test_run_scripts_env_args_exit_codes_and_kept_layer(home, image, tmp_path, vm):
    d = project(tmp_path, APP.format(image=image))
    (d / ".env").write_text("# env_file\nFROM_FILE=file\nBOTH=from-file\n"
                            "export QUOTED=\"q v\"\n\n")
    r = run(home, d, "run", "app", "--", "a", "b c")
    assert r.returncode == 0, r.stderr
    # $0 is the sandbox, "$@" the ARGs; envs beat env_file; workdir made;
    # the hostname is the sandbox's name
    assert r.stdout == "start app [a b c] file envs from-envs q v /work app\n", r.stdout
    # the shortcut, a script by name, its exit status, stdin through
    msr = tmp_path / "msr"
    msr.symlink_to(MSB)
    r = subprocess.run([str(msr), "app~fail"], env=home, cwd=d, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 3, r.stderr
    r = run(home, d, "run", "app~stdin", input="hello\n")
    assert (r.returncode, r.stdout) == (0, "HELLO\n"), r.stderr
    r = run(home, d, "r", "app", "-e", 'echo "inline $1"; exit 7', "--", "x")
    assert (r.returncode, r.stdout) == (7, "inline x\n"), r.stderr
    r = run(home, d, "run", "cmd_only", "--", "more")
    assert (r.returncode, r.stdout) == (0, "from command more\n"), r.stderr
    # memory and cpus shape the VM; shell is what msb shell (and a script) runs
    r = run(home, d, "run", "app", "-e", "grep MemTotal /proc/meminfo")
    mem_kib = int(r.stdout.split()[1])
    assert 180 * 1024 < mem_kib <= 256 * 1024, r.stdout
    r = run(home, d, "shell", "two", input="nproc; echo $0\n")
    assert (r.returncode, r.stdout) == (0, "2\n/bin/ash\n"), r.stderr
    # no VM for a script that is not there
    r = run(home, d, "run", "app~nope")
    assert r.returncode == 1
    assert "sandbox 'app' has no script 'nope' (it has: start, keep, fail, stdin)" in r.stderr, r.stderr
    r = run(home, d, "run", "nobody")
    assert r.returncode == 1 and "has no sandbox 'nobody'" in r.stderr, r.stderr
    # the writable layer: what one run writes, the next finds
    for want in ("1", "2"):
        r = run(home, d, "run", "app~keep")
        assert (r.returncode, r.stdout.strip()) == (0, want), r.stderr
    disk = d / ".msb" / "sandboxes" / "app" / "rw.ext4"
    assert (d / ".msb" / ".gitignore").exists()  # no msb init here: made on first run
    assert disk.stat().st_blocks * 512 < 64 << 20 < disk.stat().st_size  # sparse
    # clean asks (no terminal here: refused), then --force resets it
    r = run(home, d, "clean", "app", stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and "--force" in r.stderr, r.stderr
    assert disk.exists()
    r = run(home, d, "clean", "--force", "app")
    assert r.returncode == 0 and "app: cleaned" in r.stdout, r.stderr
    assert not disk.exists()
    r = run(home, d, "run", "app~keep")
    assert (r.returncode, r.stdout.strip()) == (0, "1"), r.stderr


def test_env_file_errors(home, image, tmp_path):
    d = project(tmp_path, APP.format(image=image))
    r = run(home, d, "run", "app")
    assert r.returncode == 1
    assert re.search(r"Sandboxfile:7:\d+: sandboxes.app.env_file: cannot read .*\.env", r.stderr)
    (d / ".env").write_text("GOOD=1\nnot a line\n")
    r = run(home, d, "run", "app")
    assert r.returncode == 1 and ".env:2: expected KEY=VALUE" in r.stderr, r.stderr
    (d / ".env").write_text("GOOD=1\nLONG=" + "v" * 9000 + "\n")
    r = run(home, d, "run", "app")
    assert r.returncode == 1 and ".env:2: a line longer than" in r.stderr, r.stderr


CHAIN = """\
sandboxes:
  web:
    image: "{image}"
    memory: 256
    depends_on: [api]
    scripts:
      start: 'echo web up; exec sleep 1000'
  api:
    image: "{image}"
    memory: 256
    depends_on: [db]
    scripts:
      start: 'echo api up; exec sleep 1000'
      hello: 'echo "hello from $HOSTNAME $*"'
  db:
    image: "{image}"
    memory: 256
    scripts:
      start: 'i=0; while true; do i=$((i+1)); echo "db line $i"; sleep 0.2; done'
  idle:
    image: "{image}"
    memory: 256
  chatty:
    image: "{image}"
    memory: 256
    scripts:
      start: 'yes 0123456789abcdef0123456789abcdef | head -c 9437184; echo; echo last line; exec sleep 1000'
"""


def status(env, d):
    """{name: (status, pid, memory MiB or None)} from msb status."""
    r = run(env, d, "status")
    assert r.returncode == 0, r.stderr
    out = {}
    for line in r.stdout.splitlines()[1:]:
        f = line.split()
        mem = None
        if f[1] == "running":
            n, unit = float(f[5]), f[6]
            mem = n / 1024 if unit == "KiB" else n * 1024 if unit == "GiB" else n
        out[f[0]] = (f[1], f[2], mem)
    return out


def keeper_of(d, name):
    """The keeper's pid, from the first line of the sandbox's log."""
    text = (d / ".msb" / "log" / f"{name}.log").read_text()
    return int(re.search(r"keeper pid (\d+)", text).group(1))


def test_up_order_attach_status_log_down(home, image, tmp_path, vm):
    d = project(tmp_path, CHAIN.format(image=image))
    try:
        r = run(home, d, "up", "web")
        assert r.returncode == 0, r.stderr
        # three levels of depends_on: each started once the one before runs
        assert r.stdout.splitlines() == ["db: up", "api: up", "web: up"], r.stdout
        st = status(home, d)
        assert [st[n][0] for n in ("db", "api", "web", "idle")] == ["running"] * 3 + ["stopped"]
        listed = {ln.split()[0]: ln.split()[6] for ln in run(home, d, "list").stdout.splitlines()[1:]}
        assert listed == {"web": "running", "api": "running", "db": "running", "idle": "stopped",
                          "chatty": "stopped"}
        # up again: nothing to do for those
        r = run(home, d, "up", "api")
        assert "db: running already" in r.stdout and "api: running already" in r.stdout
        # run a script in the running sandbox, and a shell there (no terminal)
        r = run(home, d, "run", "api~hello", "--", "x")
        assert (r.returncode, r.stdout) == (0, "hello from api x\n"), r.stderr
        r = run(home, d, "shell", "api", input="echo in $HOSTNAME; exit 4\n")
        assert (r.returncode, r.stdout) == (4, "in api\n"), r.stderr
        # bulk stdin and output through the keeper arrive byte-exact
        data = os.urandom(8 << 20)
        r = subprocess.run([str(MSB), "run", "api", "-e", "sha256sum; head -c 4194304 /dev/zero"],
                           env=home, cwd=d, input=data, capture_output=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert r.stdout[:64] == hashlib.sha256(data).hexdigest().encode(), r.stdout[:80]
        assert r.stdout[64:].lstrip(b" -\n") == bytes(4 << 20)
        # memory figures move when the guest allocates (64 MiB in tmpfs)
        before = status(home, d)["api"][2]
        r = run(home, d, "run", "api", "-e", "head -c 67108864 /dev/zero > /dev/shm/fill")
        assert r.returncode == 0, r.stderr
        after = status(home, d)["api"][2]
        assert after >= before + 48, (before, after)
        # the log: what db's start script wrote, -n, -f until it stops
        time.sleep(1)
        log = run(home, d, "log", "db")
        assert "db line 1\n" in log.stdout and "db line 3\n" in log.stdout, log.stdout
        last = run(home, d, "log", "db", "-n", "1").stdout
        assert re.fullmatch(r"db line \d+\n", last), last
        follow = subprocess.Popen([str(MSB), "log", "-f", "-n", "0", "db"], env=home, cwd=d,
                                  stdout=subprocess.PIPE, text=True)
        line = follow.stdout.readline()
        assert re.fullmatch(r"db line \d+\n", line), line
        # down db: its dependants go first, and `idle` was never up
        r = run(home, d, "down", "db")
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines() == ["web: down", "api: down", "db: down"], r.stdout
        follow.wait(timeout=60)  # -f ends with the sandbox
        assert all(v[0] == "stopped" for v in status(home, d).values())
        assert "sandbox 'db' stopped" in (d / ".msb" / "log" / "db.log").read_text()
        assert not list((d / ".msb" / "sandboxes").glob("*/ctl.sock"))
    finally:
        run(home, d, "down")


def test_killed_vmm_and_killed_keeper(home, image, tmp_path, vm):
    """A VMM killed with SIGKILL: its keeper notices (even with no command
    running in it) and ends; a keeper killed with SIGKILL takes its VM
    along, and its record and socket are cleaned by the next command that
    looks."""
    d = project(tmp_path, CHAIN.format(image=image))
    try:
        r = run(home, d, "up", "db", "idle")
        assert r.returncode == 0, r.stderr
        st = status(home, d)
        idle_keeper = keeper_of(d, "idle")
        os.kill(int(st["idle"][1]), signal.SIGKILL)
        keeper = keeper_of(d, "db")
        vmm = int(st["db"][1])
        os.kill(keeper, signal.SIGKILL)
        for _ in range(300):
            if not os.path.exists(f"/proc/{idle_keeper}"):
                break
            time.sleep(0.1)
        assert not os.path.exists(f"/proc/{idle_keeper}"), "the keeper of a dead VM goes on"
        assert "sandbox 'idle' stopped" in (d / ".msb" / "log" / "idle.log").read_text()
        st = status(home, d)
        assert st["db"][0] == "stopped" and st["idle"][0] == "stopped", st
        assert not list((d / ".msb" / "sandboxes").glob("*/ctl.sock"))
        for _ in range(100):  # the VMM follows its keeper (parent-death signal)
            if not os.path.exists(f"/proc/{vmm}"):
                break
            time.sleep(0.1)
        assert not os.path.exists(f"/proc/{vmm}")
        r = run(home, d, "down")
        assert r.returncode == 0 and r.stdout == "", (r.stdout, r.stderr)
        # and they start again
        r = run(home, d, "up", "db", "idle")
        assert r.returncode == 0, r.stderr
        r = run(home, d, "run", "idle", "-e", "echo again")
        assert r.stdout == "again\n", r.stderr
    finally:
        run(home, d, "down")


def term_read_until(master, needle, timeout=120):
    """pty_read_until() that also answers what a terminal answers: busybox's
    line editor asks for the cursor position (ESC [6n) at each prompt."""
    out = b""
    end = time.monotonic() + timeout
    while needle not in out and time.monotonic() < end:
        chunk = pty_read_until(master, b"\x1b[6n", timeout=0.5)
        if b"\x1b[6n" in chunk:
            os.write(master, b"\x1b[1;1R")
        out += chunk
        if needle in out:
            break
    return out


SHELL_SCRIPT = 'stty size; trap "echo got-INT" INT; echo READY\n'


def test_shell_terminal_in_a_running_sandbox(home, image, tmp_path, vm):
    """msb shell NAME on a terminal, into a sandbox msb up started: the
    keeper relays a pty of our size, typed commands, a resize, Ctrl-C, and
    the shell's exit status."""
    d = project(tmp_path, CHAIN.format(image=image))
    try:
        assert run(home, d, "up", "idle").returncode == 0
        master, slave = os.openpty()
        pty_winsize(master, 24, 80)
        p = subprocess.Popen([str(MSB), "shell", "idle"], env=home, cwd=d, stdin=slave,
                             stdout=slave, stderr=slave, start_new_session=True)
        os.close(slave)
        try:
            term_read_until(master, b"# ")  # the prompt
            os.write(master, b"echo $((6*7))\n")
            out = term_read_until(master, b"42")
            assert b"42" in out, out
            os.write(master, SHELL_SCRIPT.encode())
            out = term_read_until(master, b"READY\r\n")
            assert b"24 80" in out, out
            pty_winsize(master, 33, 101)
            p.send_signal(signal.SIGWINCH)
            time.sleep(1)  # the resize travels to the guest's pty on its own
            os.write(master, b"stty size\n")
            out = term_read_until(master, b"33 101")
            assert b"33 101" in out, out
            os.write(master, b"sleep 100\n")
            time.sleep(1)
            os.write(master, b"\x03")
            out = term_read_until(master, b"got-INT")
            assert b"got-INT" in out, out
            os.write(master, b"exit 5\n")
            assert p.wait(timeout=60) == 5
        finally:
            if p.poll() is None:
                p.kill()
            os.close(master)
        # the sandbox runs on
        assert status(home, d)["idle"][0] == "running"
    finally:
        run(home, d, "down")


def test_help_and_usage(env, tmp_path):
    d = project(tmp_path, "sandboxes:\n  a:\n    image: x\n")
    for cmd in ("run", "shell", "up", "down", "status", "log", "clean"):
        r = run(env, d, cmd, "--help")
        assert r.returncode == 0 and r.stdout.startswith("usage: msb " + cmd), (cmd, r.stdout)
    r = run(env, d, "run")
    assert r.returncode == 2 and "which sandbox" in r.stderr
    r = run(env, d, "log")
    assert r.returncode == 2 and "which sandbox" in r.stderr
    r = run(env, d, "clean")
    assert r.returncode == 2
    r = run(env, d, "shell", "a~x")
    assert r.returncode == 2 and "no script" in r.stderr
    r = run(env, d, "status", "zz")
    assert r.returncode == 1 and "has no sandbox 'zz'" in r.stderr
    r = run(env, d, "log", "a")
    assert r.returncode == 1 and "has no log yet" in r.stderr
    r = run(env, tmp_path, "status")
    assert r.returncode == 1 and "Sandboxfile" in r.stderr


def test_two_projects_with_the_same_sandbox_name(home, image, tmp_path, vm):
    """Records, sockets and writable layers belong to a project: two projects'
    `idle` run side by side, each keeps its own files, and stopping one leaves
    the other running."""
    one = tmp_path / "one"
    two = tmp_path / "two"
    for d in (one, two):
        d.mkdir()
        (d / "Sandboxfile").write_text(CHAIN.format(image=image))
    try:
        assert run(home, one, "up", "idle").returncode == 0
        # run -d: in the background with its command, which logs
        r = run(home, two, "run", "-d", "idle", "-e", "echo detached; exec sleep 1000")
        assert (r.returncode, r.stdout) == (0, ""), r.stderr
        for _ in range(100):
            if "detached" in run(home, two, "log", "idle").stdout:
                break
            time.sleep(0.1)
        assert "detached\n" in run(home, two, "log", "idle").stdout
        for d in (one, two):
            r = run(home, d, "run", "idle", "-e", f"echo {d.name} > /mine; cat /mine")
            assert r.stdout == f"{d.name}\n", r.stderr
        assert run(home, one, "down").stdout == "idle: down\n"
        assert status(home, one)["idle"][0] == "stopped"
        assert status(home, two)["idle"][0] == "running"
        r = run(home, two, "run", "idle", "-e", "cat /mine")
        assert r.stdout == "two\n", r.stderr
        # every project's running sandboxes, from anywhere
        r = run(home, tmp_path, "status", "--all")
        rows = [ln.split() for ln in r.stdout.splitlines()[1:]]
        assert [(x[0], x[-1]) for x in rows] == [("idle", str(two))], r.stdout + r.stderr
    finally:
        for d in (one, two):
            run(home, d, "down")


def test_log_is_capped_and_rotated(home, image, tmp_path, vm):
    """9 MiB of output: the log is rotated at 8 MiB (NAME.log.1), so a chatty
    sandbox cannot fill the disk; msb log shows the current one."""
    d = project(tmp_path, CHAIN.format(image=image))
    log = d / ".msb" / "log" / "chatty.log"
    try:
        assert run(home, d, "up", "chatty").returncode == 0
        for _ in range(600):
            if "last line" in log.read_text(errors="replace"):
                break
            time.sleep(0.1)
        old = log.with_name("chatty.log.1")
        assert old.exists() and 8 << 20 <= old.stat().st_size < (8 << 20) + (1 << 20)
        assert log.stat().st_size < 2 << 20
        assert run(home, d, "log", "-n", "1", "chatty").stdout == "last line\n"
    finally:
        run(home, d, "down")
