"""The README's main job, exactly as a new user runs it after ./setup: the
built-in image (made by ./setup into the user's own store) and no options."""
import os
import subprocess

import pytest

from conftest import MSB


def user_env():
    """The user's environment: their MSB_HOME and cache, as after ./setup."""
    e = dict(os.environ)
    for k in ("MSB_HOST",):
        e.pop(k, None)
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
