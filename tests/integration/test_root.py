"""The sandbox's root: an erofs image on a disk, mounted read-only by the
agent under an overlay whose upper layer is memory; execs run in it.

The image is made by msb's own erofs writer (build/tools/mkerofs) from a
directory (a static busybox and an /etc/os-release) and checked with
erofs-utils' fsck.erofs; the VM is a warm start, so the disk is bound after
the restore and the agent waits for its capacity.
"""
import hashlib
import os
import shutil
import subprocess

import pytest

from conftest import ROOT
from msbvm import MsbError, VM

INITRD = ROOT / "build" / "tests" / "guest" / "agent-test.cpio"
MKEROFS = ROOT / "build" / "tools" / "mkerofs"
XATTRS = ROOT / "build" / "tests" / "guest" / "xattrs"
CAP = "0100000200200000000000000000000000000000"  # vfs_cap_data v2: cap_net_raw


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    d = tmp_path_factory.mktemp("image")
    root = d / "root"
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    shutil.copy("/bin/busybox", root / "bin" / "busybox")
    for applet in ("sh", "cat", "ls", "echo", "test", "id", "hostname"):
        (root / "bin" / applet).symlink_to("busybox")
    (root / "etc" / "os-release").write_text("NAME=msb-test-root\n")
    shutil.copy(XATTRS, root / "bin" / "xattrs")
    img = d / "root.erofs"
    r = subprocess.run([str(MKEROFS), "--xattr", "/bin/busybox", "security.capability=" + CAP,
                        "--xattr", "/bin", "user.note=6869", str(root), str(img)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["fsck.erofs", str(img)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    junk = d / "junk.img"
    junk.write_bytes(b"\0" * (1 << 20))
    os.environ["MSB_HOME"] = str(d / "home")
    return img, junk


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_image_root_after_a_restore(image):
    img, junk = image
    before = digest(img)
    vm = VM(mem_mib=256, initrd=INITRD, disks=[(img, False), (junk, False)])
    try:
        # not an erofs image; an empty slot
        with pytest.raises(MsbError) as e:
            vm.mount_root(1)
        assert "erofs" in e.value.msg, e.value.msg
        with pytest.raises(MsbError) as e:
            vm.mount_root(2, wait_ms=300)
        assert "did not get a capacity" in e.value.msg, e.value.msg
        vm.mount_root(0)
        st, out, err = vm.run(["cat", "/etc/os-release"])
        assert (st.code, out) == (0, b"NAME=msb-test-root\n"), err
        # the image is read-only underneath, the sandbox writes to memory
        st, out, err = vm.run(["sh", "-c", "echo new > /etc/new && cat /etc/new && "
                               "test -d /proc/1 && test -c /dev/null && test -d /dev/pts && "
                               "echo x > /tmp/t && echo x > /dev/shm/s && ls /"])
        assert st.code == 0, (out, err)
        assert out.startswith(b"new\n")
        for d in (b"bin", b"dev", b"etc", b"proc", b"sys", b"tmp"):
            assert d in out.split(), out
        with pytest.raises(MsbError) as e:
            vm.mount_root(0)
        assert "mounted already" in e.value.msg
        # xattrs the writer stored, as the guest kernel reads them
        st, out, err = vm.run(["/bin/xattrs", "/bin/busybox", "/bin"])
        assert st.code == 0, err
        assert out == (f"/bin/busybox security.capability {CAP}\n"
                       "/bin user.note 6869\n").encode(), out
    finally:
        vm.destroy()
    assert digest(img) == before
