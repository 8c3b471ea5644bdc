"""The main flows as an ordinary user: msb never needs root.

Run as root (CI), this test switches to the unprivileged `nobody` with
setpriv, with /dev/kvm's group when that group may open it (then msb runs
natively), else without (then msb runs its portable host, which needs no
device at all). The build's share directory links into root's private cache,
so the user gets a copy it can read (MSB_SHARE_DIR), and a home of its own.
Run as an ordinary user, the whole suite is this test already.
"""
import grp
import os
import pwd
import shutil
import stat
import subprocess
import tempfile

import pytest

from conftest import MSB, ROOT
from registry import *  # noqa: F401,F403


@pytest.fixture
def user_home():
    if os.geteuid() != 0:
        pytest.skip("running as an ordinary user already: the whole suite is rootless")
    if not os.path.exists("/dev/kvm"):
        pytest.skip("this machine has no /dev/kvm")
    nobody = pwd.getpwnam("nobody")
    d = tempfile.mkdtemp(prefix="msb-rootless-")
    share = os.path.join(d, "share")
    os.mkdir(share)
    src = ROOT / "build" / "share" / "msb"
    for name in ("agent.cpio", "vmlinux", "kvm-smoke-guest.bin", "phost"):
        p = src / name
        (shutil.copytree if p.is_dir() else shutil.copy)(p.resolve(), os.path.join(share, name))
    for root, dirs, files in os.walk(d):
        for n in dirs + files:
            os.chown(os.path.join(root, n), nobody.pw_uid, nobody.pw_gid)
    os.chown(d, nobody.pw_uid, nobody.pw_gid)
    os.chmod(d, 0o700)
    yield d, nobody
    shutil.rmtree(d, ignore_errors=True)


def as_user(user_home, *args, cwd=None, input=None, timeout=300):
    d, nobody = user_home
    kvm = os.stat("/dev/kvm")
    groups = []
    if kvm.st_mode & stat.S_IRGRP and kvm.st_mode & stat.S_IWGRP:
        groups = ["--groups", str(kvm.st_gid)]  # a user in the kvm group
    env = {"PATH": os.environ["PATH"], "HOME": d, "MSB_HOME": os.path.join(d, "msb"),
           "XDG_CACHE_HOME": os.path.join(d, "cache"), "MSB_SHARE_DIR": os.path.join(d, "share"),
           "DOCKER_CONFIG": os.path.join(d, "docker")}
    cmd = ["setpriv", "--reuid", str(nobody.pw_uid), "--regid", str(nobody.pw_gid),
           *(groups or ["--clear-groups"]), *args]
    return subprocess.run(cmd, env=env, cwd=cwd or d, capture_output=True, text=True,
                          input=input, timeout=timeout)


def test_main_flows_without_root(user_home, registry, oci_images):
    d, nobody = user_home
    ref = push(registry, busybox_image(oci_images), "latest", "rootless/busybox")
    m = str(MSB)
    r = as_user(user_home, m, "exe", "--memory", "256", ref, "--", "sh", "-c", "id -u; echo hi")
    assert (r.returncode, r.stdout) == (0, "0\nhi\n"), r.stderr  # root inside, not outside
    proj = os.path.join(d, "proj")
    assert as_user(user_home, m, "init", proj).returncode == 0
    r = as_user(user_home, m, "add", "counter", "-i", ref, "--memory", "256", "--start",
                'echo line >> /kept; wc -l < /kept', cwd=proj)
    assert r.returncode == 0, r.stderr
    for want in ("1\n", "2\n"):  # the writable layer, made by mke2fs as the user
        r = as_user(user_home, m, "run", "counter", cwd=proj)
        assert (r.returncode, r.stdout) == (0, want), r.stderr
    r = as_user(user_home, m, "add", "svc", "-i", ref, "--memory", "256", "--start",
                "exec sleep 1000", cwd=proj)
    assert r.returncode == 0, r.stderr
    try:
        r = as_user(user_home, m, "up", "svc", cwd=proj)
        assert r.returncode == 0, r.stderr
        r = as_user(user_home, m, "status", cwd=proj)
        assert "running" in r.stdout, r.stdout + r.stderr
        r = as_user(user_home, m, "shell", "svc", cwd=proj, input="id -u; exit 6\n")
        assert (r.returncode, r.stdout) == (6, "0\n"), r.stderr
    finally:
        r = as_user(user_home, m, "down", cwd=proj)
    assert r.returncode == 0 and "svc: down" in r.stdout, r.stderr
    bindir = os.path.join(d, "bin")
    r = as_user(user_home, m, "install", "--dir", bindir, "--memory", "256", ref, "bb")
    assert r.returncode == 0, r.stderr
    r = as_user(user_home, os.path.join(bindir, "bb"), "wc", "-c", input="12345")
    assert (r.returncode, r.stdout.strip()) == (0, "5"), r.stderr
    # nothing in the user's files belongs to anyone else
    for root, dirs, files in os.walk(d):
        for n in dirs + files:
            p = os.path.join(root, n)
            assert os.lstat(p).st_uid == nobody.pw_uid, p
