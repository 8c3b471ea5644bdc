"""Shared fixtures: the built msb, an isolated MSB_HOME and cache per test."""
import os
import pathlib
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The environment pytest started with: tests that drive libmsb through ctypes
# set MSB_HOME in os.environ, and tests of the user's own setup need this one.
ORIGINAL_ENV = dict(os.environ)
MSB = ROOT / "build" / "bin" / "msb"


def kvm_runs_standard_guests():
    """The self-test msb itself uses, run through msb's own code (uncached)."""
    if not os.path.exists("/dev/kvm"):
        return False, "this machine has no /dev/kvm"
    env = dict(os.environ, MSB_HOST="native")
    env["XDG_CACHE_HOME"] = "/nonexistent-msb-test-cache"  # never a cached answer
    r = subprocess.run([str(MSB), "info"], env=env, capture_output=True, text=True, timeout=60)
    if r.returncode == 0:
        return True, ""
    return False, r.stderr.strip()


@pytest.fixture(scope="session")
def native_ok():
    return kvm_runs_standard_guests()


@pytest.fixture
def env(tmp_path):
    e = dict(os.environ)
    e.pop("MSB_HOST", None)
    e["MSB_HOME"] = str(tmp_path / "home")
    e["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    return e


@pytest.fixture(scope="module")
def vm_shared(tmp_path_factory):
    """VM snapshots and the host probe, shared by a module's tests."""
    d = tmp_path_factory.mktemp("msb-vm-shared")
    (d / "snapshots").mkdir()
    (d / "xdg").mkdir()
    return d


@pytest.fixture
def home(env, tmp_path, vm_shared):
    """`env` with its own MSB_HOME (sharing the module's VM snapshots), a shared
    XDG_CACHE_HOME and a DOCKER_CONFIG of its own."""
    h = pathlib.Path(env["MSB_HOME"])
    h.mkdir(parents=True)
    (h / "snapshots").symlink_to(vm_shared / "snapshots")
    env["XDG_CACHE_HOME"] = str(vm_shared / "xdg")
    env["DOCKER_CONFIG"] = str(tmp_path / "docker-config")
    env.pop("MSB_INSECURE_REGISTRIES", None)
    return env


def msb(env, *args, timeout=300, **kw):
    return subprocess.run([str(MSB), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, **kw)


def children():
    """The pids (as strings) of this process's children."""
    me = str(os.getpid())
    kids = set()
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1] == me:
                kids.add(p)
        except OSError:
            pass
    return kids


def pty_read_until(fd, needle, timeout=120):
    """What the pty master gives until @needle appears (or the time is up)."""
    import select
    out = b""
    end = time.monotonic() + timeout
    while needle not in out and time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out


def pty_winsize(fd, rows, cols):
    import fcntl
    import struct
    import termios
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
