"""The README's main job, exactly as a new user runs it after ./setup: the
built-in image (made by ./setup into the user's own store) and no options."""
import os
import subprocess

import pytest

from conftest import MSB, ORIGINAL_ENV
from registry import OCILayout, push, registry  # noqa: F401 (a fixture)


def user_env():
    """The user's environment: their MSB_HOME and cache, as after ./setup."""
    e = dict(ORIGINAL_ENV)
    e.pop("MSB_HOST", None)
    return e


@pytest.mark.skipif(not os.path.exists("/dev/kvm"), reason="this machine has no /dev/kvm")
def test_hello_from_a_microvm():
    ls = subprocess.run([str(MSB), "image", "ls"], env=user_env(), capture_output=True,
                        text=True, timeout=60)
    assert ls.returncode == 0, ls.stderr
    assert "msb.local/default:latest" in ls.stdout, \
        "the built-in image is missing: ./setup makes it (images/build-default)"
    r = subprocess.run([str(MSB), "exe", "--", "python3", "-c", 'print("hello from a microVM")'],
                       env=user_env(), capture_output=True, text=True, timeout=300,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello from a microVM\n"
    # The image's own Debian, and python's exit status is msb's.
    r = subprocess.run([str(MSB), "x", "--", "python3", "-c",
                        "import sys; print(open('/etc/debian_version').read().split('.')[0]);"
                        " sys.exit(5)"],
                       env=user_env(), capture_output=True, text=True, timeout=300,
                       stdin=subprocess.DEVNULL)
    assert (r.returncode, r.stdout) == (5, "12\n"), r.stderr


def user_store():
    e = ORIGINAL_ENV
    if e.get("MSB_HOME"):
        return e["MSB_HOME"]
    data = e.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(data, "msb")


@pytest.mark.skipif(not os.path.exists("/dev/kvm"), reason="this machine has no /dev/kvm")
def test_debian_image_through_a_registry(registry, tmp_path):
    """A real Debian root file system (the one ./setup made with mmdebstrap) as
    an ordinary image: pushed to a local registry, pulled, run. Ownership,
    setuid bits and Debian's own hard links survive the trip."""
    import json
    import sqlite3


    store = user_store()
    db = sqlite3.connect(os.path.join(store, "msb.db"))
    (man,) = db.execute("SELECT manifest_digest FROM refs WHERE ref = ?",
                        ("msb.local/default:latest",)).fetchone()
    blob = lambda d: open(os.path.join(store, "blobs", "sha256", d.split(":")[1]), "rb").read()
    layer = json.loads(blob(man))["layers"][0]["digest"]

    lay = OCILayout(tmp_path / "layout")
    desc, diff = lay.layer(blob(layer), compression="gzip")
    mdesc, _, _ = lay.image([(desc, diff)], config_extra={
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": ["/bin/bash"]})
    lay.tag(mdesc, "bookworm")
    ref = push(registry, lay.path, "bookworm", "debian/python")

    env = user_env()
    env["MSB_HOME"] = str(tmp_path / "home")
    os.makedirs(env["MSB_HOME"])
    # The user's warm-start images: no need to make them again.
    os.symlink(os.path.join(store, "snapshots"), os.path.join(env["MSB_HOME"], "snapshots"))
    r = subprocess.run([str(MSB), "pull", ref], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    script = ("import os, sys; s = os.stat('/usr/bin/su'); p = os.stat('/usr/bin/perl');"
              "q = os.stat('/usr/bin/perl5.36.0');"
              "print(sys.version_info[:2], oct(s.st_mode & 0o7777), s.st_uid,"
              " p.st_ino == q.st_ino, p.st_nlink, os.stat('/etc/shadow').st_gid)")
    r = subprocess.run([str(MSB), "exe", ref, "--", "python3", "-c", script], env=env,
                       capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "(3, 11) 0o4755 0 True 2 42\n"
