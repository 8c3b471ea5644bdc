"""Shared fixtures: the built msb, an isolated MSB_HOME and cache per test."""
import os
import pathlib
import subprocess

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
