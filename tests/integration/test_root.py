"""The sandbox's root: an erofs image on a disk, mounted read-only by the
agent under an overlay whose upper layer is memory; execs run in it, as
users the agent resolves in the image's /etc/passwd and /etc/group, and
find the /etc files the agent wrote.

The image is made by msb's own erofs writer (build/tools/mkerofs) from a
directory (a static busybox, an /etc/os-release, passwd and group, and a
dangling /etc/resolv.conf symlink as Debian images can have) and checked
with erofs-utils' fsck.erofs; the VM is a warm start, so the disk is bound
after the restore and the agent waits for its capacity. One VM serves every
test here.
"""
import errno
import hashlib
import os
import shutil
import subprocess

import pytest

from conftest import ROOT
from msbvm import MsbError, VM, disk_make

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
    for applet in ("sh", "cat", "ls", "echo", "test", "id", "hostname", "true"):
        (root / "bin" / applet).symlink_to("busybox")
    (root / "etc" / "os-release").write_text("NAME=msb-test-root\n")
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n"
                                         "app:x:1000:1000::/home/app:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nwheel:x:10:app\napp:x:1000:\n")
    (root / "etc" / "resolv.conf").symlink_to("/run/systemd/resolve/stub-resolv.conf")
    (root / "home" / "app").mkdir(parents=True)
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


@pytest.fixture(scope="module")
def vm(image):
    """One VM with the image mounted as its root (slot 0), after the mounts
    that must fail; the image is unchanged once it is gone."""
    img, junk = image
    before = digest(img)
    v = VM(mem_mib=256, initrd=INITRD, disks=[(img, False), (junk, False)])
    try:
        # not an erofs image; an empty slot
        with pytest.raises(MsbError) as e:
            v.mount_root(1)
        assert "erofs" in e.value.msg, e.value.msg
        with pytest.raises(MsbError) as e:
            v.mount_root(2, wait_ms=300)
        assert "did not get a capacity" in e.value.msg, e.value.msg
        v.mount_root(0)
        yield v
    finally:
        v.destroy()
    assert digest(img) == before


def test_image_root_after_a_restore(vm):
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


def test_writable_layer_keeps_changes_between_runs(image, tmp_path):
    """A project sandbox's upper layer is an ext4 disk of its own: what one
    run writes (a new file, a changed and a deleted image file) the next run
    of the same disk sees, on the unchanged image; another disk does not."""
    img, _ = image
    before = digest(img)
    mine, other = tmp_path / "mine.ext4", tmp_path / "other.ext4"
    disk_make(mine)
    disk_make(other)
    assert mine.stat().st_blocks * 512 < 16 << 20  # sparse: a limit, not space

    def run(disk, script):
        v = VM(mem_mib=256, initrd=INITRD, disks=[(img, False), (disk, True)])
        try:
            v.mount_root(0, upper=1)
            st, out, err = v.run(["sh", "-c", script])
            assert st.code == 0, err
            v.stop()  # a clean power-off: the guest syncs its writes
            return out
        finally:
            v.destroy()

    run(mine, "echo kept > /etc/kept && echo changed > /etc/os-release && "
              "rm /bin/true && mkdir -p /home/app/data && echo d > /home/app/data/f")
    out = run(mine, "cat /etc/kept /etc/os-release /home/app/data/f; test -e /bin/true; echo $?")
    assert out == b"kept\nchanged\nd\n1\n", out
    out = run(other, "cat /etc/os-release; test -e /etc/kept; echo $?")
    assert out == b"NAME=msb-test-root\n1\n", out
    assert digest(img) == before
    with pytest.raises(MsbError) as e:  # the root's own slot cannot be its upper
        v = VM(mem_mib=256, initrd=INITRD, disks=[(img, False)])
        try:
            v.mount_root(0, upper=0)
        finally:
            v.destroy()
    assert "writable layer disk" in e.value.msg


WHO = ["sh", "-c", 'echo "$(id -u) $(id -g) $(id -G)"; echo "$HOME"']


def who(vm, user, **kw):
    """(uid, gid, set of groups, HOME) of a process run as @user."""
    st, out, err = vm.run(WHO, user=user, **kw)
    assert st.code == 0, (out, err)
    ids, home = out.decode().splitlines()
    uid, gid, *groups = (int(n) for n in ids.split())
    return uid, gid, set(groups), home


def test_users_from_the_images_passwd_and_group(vm):
    # a name: its ids, the groups listing it, its home
    assert who(vm, "app") == (1000, 1000, {1000, 10}, "/home/app")
    assert who(vm, "root") == (0, 0, {0}, "/root")
    # a uid in passwd is that user; one that is not gets gid 0 and HOME /
    assert who(vm, "1000") == (1000, 1000, {1000, 10}, "/home/app")
    assert who(vm, "1234") == (1234, 0, {0}, "/")
    # an explicit group is the only one, by number or by name
    assert who(vm, "app:10") == (1000, 10, {10}, "/home/app")
    assert who(vm, "1234:wheel") == (1234, 10, {10}, "/")
    # HOME from the env wins; no user is uid/gid as given
    assert who(vm, "app", env=["PATH=/bin", "HOME=/given"])[3] == "/given"
    assert who(vm, None, uid=5, gid=6) == (5, 6, {6}, "/root")


def test_missing_users_fail_the_start(vm):
    for user, words in (("nosuch", "unable to find user nosuch: no matching entries in "
                                    "passwd file"),
                        ("app:nosuch", "unable to find group nosuch: no matching entries "
                                       "in group file")):
        with pytest.raises(MsbError) as e:
            vm.run(["true"], user=user)
        assert e.value.msg == words, e.value.msg
        assert e.value.errno == errno.ENOENT
    with pytest.raises(MsbError) as e:
        vm.run(["true"], user="2147483648")
    assert e.value.errno == errno.ERANGE, e.value.msg
    # the VM goes on
    assert who(vm, "app")[0] == 1000


def test_etc_files_the_agent_wrote(vm):
    name = vm.hostname
    st, out, err = vm.run(["sh", "-c", "hostname; cat /etc/hostname"])
    assert (st.code, out) == (0, f"{name}\n{name}\n".encode()), err
    st, out, err = vm.run(["cat", "/etc/hosts"])
    assert st.code == 0, err
    assert out == (b"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                   b"127.0.1.1\t" + name.encode() + b"\n"), out
    # the image's symlink is replaced by a regular file, root's, 0644
    st, out, err = vm.run(["sh", "-c", "test -f /etc/resolv.conf && ! test -L /etc/resolv.conf "
                           "&& cat /etc/resolv.conf && ls -ln /etc/resolv.conf /etc/hostname "
                           "/etc/hosts"])
    assert st.code == 0, (out, err)
    lines = out.decode().splitlines()
    assert lines[0] == "# msb: this sandbox has no network (scope none)", out
    for line in lines[1:]:
        mode, _, uid, gid = line.split()[:4]
        assert (mode, uid, gid) == ("-rw-r--r--", "0", "0"), line
