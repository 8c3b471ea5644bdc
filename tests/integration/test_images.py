"""Images end to end: `msb pull`, `msb exe IMAGE`, `msb image`, `msb load`/`import`,
`msb login`/`logout`, against real docker-registry instances (registry.py) and,
where a registry cannot be made to misbehave on cue, a small stdlib HTTP server
speaking the distribution API (FakeRegistry: garbage manifests, a blob that
stalls mid-body).

VMs are dear here (a nested QEMU): every `msb exe` uses the same shape
(--memory 256, 1 vCPU) and one warm snapshot shared by the whole module. The
snapshot lives in $MSB_HOME/snapshots, so each test's own MSB_HOME gets a
`snapshots` symlink to a module-wide directory (and XDG_CACHE_HOME is shared
too, for the host probe). Every erofs image a test builds is checked with
erofs-utils' fsck.erofs.
"""
import base64
import gzip
import http.server
import json
import os
import pathlib
import shutil
import signal
import sqlite3
import stat
import subprocess
import threading
import time
import uuid

import pytest

from conftest import pty_read_until, pty_winsize, MSB, msb
from registry import *  # noqa: F401,F403
from registry import (F, LONG_PATH, PASSWD, _base_layer, _busybox_members, _free_port,
                      _hostile_layer)

MEM = "256"  # one VM shape for the whole file: one warm snapshot
EXE = ["exe", "--memory", MEM, "--cpus", "1", "-q"]
STORE_TOP = {"blobs", "images", "msb.db", "msb.db-wal", "msb.db-shm", "msb.db-journal", "locks",
             "log", "run", "snapshots", "tmp"}


# --------------------------------------------------------------------------------------
# environment
# --------------------------------------------------------------------------------------

@pytest.fixture
def vm():
    if not os.path.exists("/dev/kvm"):
        pytest.skip("this machine has no /dev/kvm")


def run(env, *args, input=None, timeout=300, cwd=None):
    """msb with stdin a pipe (never the terminal pytest may have)."""
    return msb(env, *args, input=input if input is not None else "", timeout=timeout, cwd=cwd)


def exe(env, *args, input=None):
    return run(env, *EXE, *args, input=input)


def ok(r):
    assert r.returncode == 0, f"rc={r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r


def one_error(r, *needles):
    """msb failed with exit 1 and one `msb: error: …` line containing every needle."""
    assert r.returncode == 1, f"rc={r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    errs = [ln for ln in r.stderr.splitlines() if ln.startswith("msb: error:")]
    assert len(errs) == 1, r.stderr
    for n in needles:
        assert n.lower() in errs[0].lower(), (n, errs[0])
    return errs[0]


# --------------------------------------------------------------------------------------
# the store
# --------------------------------------------------------------------------------------

def store(env):
    return pathlib.Path(env["MSB_HOME"])


def hexof(digest):
    return digest.split(":", 1)[1]


def blobs(env):
    d = store(env) / "blobs" / "sha256"
    return {"sha256:" + p.name for p in d.iterdir()} if d.is_dir() else set()


def partials(env):
    d = store(env) / "blobs" / "partial"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def erofs(env):
    d = store(env) / "images"
    return {p.name[:-len(".erofs")] for p in d.glob("*.erofs")} if d.is_dir() else set()


def db(env, sql, *args):
    path = store(env) / "msb.db"
    if not path.exists():
        return []
    c = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return c.execute(sql, args).fetchall()
    finally:
        c.close()


def refs(env):
    return dict(db(env, "SELECT ref, manifest_digest FROM refs"))


_FSCKED = {}


def fsck_all(env):
    """fsck.erofs on every image in the store (each file version once)."""
    for p in sorted((store(env) / "images").glob("*.erofs")):
        st = p.stat()
        key = (str(p), st.st_ino, st.st_size, st.st_mtime_ns)
        if key in _FSCKED:
            continue
        r = subprocess.run(["fsck.erofs", str(p)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"fsck.erofs {p}:\n{r.stdout}{r.stderr}"
        _FSCKED[key] = True


def pull(env, ref, *extra):
    r = ok(run(env, "pull", *extra, ref))
    fsck_all(env)
    return r


def assert_stored(env, img, ref):
    """The image is in the store completely: its blobs, its erofs, its rows."""
    man = img.manifest
    want = {img.manifest_digest, man["config"]["digest"]} | {l["digest"] for l in man["layers"]}
    assert want <= blobs(env)
    assert hexof(img.manifest_digest) in erofs(env)
    assert refs(env).get(ref) == img.manifest_digest
    fsck_all(env)


def assert_empty_store(env):
    assert erofs(env) == set()
    assert db(env, "SELECT manifest_digest FROM images") == []
    assert refs(env) == {}


def uniq():
    return uuid.uuid4().hex[:10]


def kv(out):
    """'key: value' lines -> dict."""
    d = {}
    for ln in out.splitlines():
        k, sep, v = ln.partition(": ")
        if sep:
            d[k] = v
    return d


# --------------------------------------------------------------------------------------
# a registry that misbehaves on cue (stdlib)
# --------------------------------------------------------------------------------------

class FakeRegistry:
    """Distribution API v2 over plain HTTP on 127.0.0.1 from a dict of routes.

    .image(name, img, tag) serves an OCIImage; .manifest(name, ref, body, media_type)
    serves any bytes as a manifest; .stall(digest, nbytes) makes the next GET of that
    blob send its headers and nbytes of body, then hang until .release is set.
    .requests: (method, path, range) tuples. Blob GETs honour `Range: bytes=N-`."""

    def __init__(self):
        self.routes = {}
        self.requests = []
        self.stalls = {}
        self.reached = threading.Event()
        self.release = threading.Event()
        reg = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_HEAD(self):
                reg._serve(self, head=True)

            def do_GET(self):
                reg._serve(self, head=False)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self._t = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._t.start()

    def manifest(self, name, ref, body, media_type, digest=None):
        hdr = {"Docker-Content-Digest": digest or sha256_digest(body)}
        self.routes[f"/v2/{name}/manifests/{ref}"] = (media_type, body, hdr)

    def image(self, name, img, tag):
        self.manifest(name, tag, img.manifest_bytes, img.media_type, img.digest)
        self.manifest(name, img.digest, img.manifest_bytes, img.media_type, img.digest)
        for d, b in img.blobs.items():
            self.routes[f"/v2/{name}/blobs/{d}"] = ("application/octet-stream", b,
                                                   {"Docker-Content-Digest": d})

    def stall(self, digest, nbytes):
        self.stalls[digest] = nbytes

    def blob_gets(self, digest):
        return [r for r in self.requests if r[0] == "GET" and r[1].endswith("/blobs/" + digest)]

    def stop(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def _send(self, h, status, ctype, body, hdr=(), head=False, length=None):
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body) if length is None else length))
        h.send_header("Docker-Distribution-API-Version", "registry/2.0")
        for k, v in dict(hdr).items():
            h.send_header(k, v)
        h.end_headers()
        if not head:
            h.wfile.write(body)

    def _serve(self, h, head):
        path = h.path.split("?", 1)[0]
        rng = h.headers.get("Range")
        self.requests.append((h.command, path, rng))
        if path in ("/v2", "/v2/"):
            return self._send(h, 200, "application/json", b"{}", head=head)
        route = self.routes.get(path)
        if route is None:
            code = "BLOB_UNKNOWN" if "/blobs/" in path else "MANIFEST_UNKNOWN"
            body = json.dumps({"errors": [{"code": code, "message": "unknown"}]}).encode()
            return self._send(h, 404, "application/json", body, head=head)
        ctype, body, hdr = route
        digest = path.rsplit("/", 1)[1]
        if "/blobs/" in path and not head:
            if rng and rng.startswith("bytes="):
                start, _, end = rng[6:].partition("-")
                start, end = int(start), int(end) if end else len(body) - 1
                part = body[start:end + 1]
                hdr = dict(hdr, **{"Content-Range": f"bytes {start}-{end}/{len(body)}"})
                return self._send(h, 206, ctype, part, hdr)
            n = self.stalls.pop(digest, None)
            if n is not None:
                self._send(h, 200, ctype, body[:n], hdr, length=len(body))
                h.wfile.flush()
                self.reached.set()
                self.release.wait(120)
                h.close_connection = True
                return
        return self._send(h, 200, ctype, body, hdr, head=head)


@pytest.fixture
def fake_registry():
    r = FakeRegistry()
    try:
        yield r
    finally:
        r.stop()


def unique_image(tmp, name="uniq", size=0):
    """busybox + a layer with a file only this image has (its own blob digests)."""
    lay = OCILayout(pathlib.Path(tmp) / f"{name}-{uniq()}")
    extra = [F("unique.txt", uuid.uuid4().hex + "\n")]
    if size:
        extra.append(F("big.bin", os.urandom(size)))
    mdesc, man, cfg = lay.image([_base_layer(lay), lay.layer(extra, "gzip")])
    lay.tag(mdesc, "latest")
    return OCIImage(lay.path, "latest", mdesc, lay.blobs, man, cfg)


# --------------------------------------------------------------------------------------
# pull and exe: busybox
# --------------------------------------------------------------------------------------

def test_pull_progress_quiet_and_up_to_date(home, registry, oci_images):
    img = busybox_image(oci_images)
    ref = push(registry, img, img.tag, "ti/busybox")
    r = pull(home, ref)
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines[0].startswith(f"msb: pulling {ref} (sha256:") and "1 layer" in lines[0], lines
    assert any(ln.startswith("msb: layer 1/1 sha256:") and "downloaded" in ln for ln in lines)
    assert any(ln.startswith("msb: root file system ready: ") for ln in lines)
    assert lines[-1].startswith(f"msb: {ref} pulled"), lines
    assert_stored(home, img, ref)
    r = pull(home, ref)
    assert any("1/1" in ln and "already here" in ln for ln in r.stderr.splitlines()), r.stderr
    assert f"msb: {ref} is up to date" in r.stderr
    # -q: only the full reference (a missing tag is "latest")
    r = pull(home, ref.rsplit(":", 1)[0], "-q")
    assert (r.stdout, r.stderr) == (ref + "\n", "")
    assert len(erofs(home)) == 1 and partials(home) == []


def test_exe_busybox_output_exit_code_signal_stdin(home, registry, oci_images, vm):
    img = busybox_image(oci_images)
    ref = push(registry, img, img.tag, "ti/busybox-exe")
    # not pulled yet: exe pulls it
    r = exe(home, ref, "--", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert r.returncode == 7, r.stderr
    assert r.stdout == "out\n"
    assert "err\n" in r.stderr and "out" not in r.stderr
    assert_stored(home, img, ref)
    r = exe(home, ref, "--", "sh", "-c", "kill -TERM $$")
    assert r.returncode == 143, (r.stdout, r.stderr)
    r = run(home, "x", "--memory", MEM, "-q", ref, "--", "cat", input="hi\nthere\n")
    assert (r.returncode, r.stdout) == (0, "hi\nthere\n"), r.stderr


# --------------------------------------------------------------------------------------
# image config: Env, WorkingDir, User, Entrypoint + Cmd
# --------------------------------------------------------------------------------------

def test_exe_config_image(home, registry, oci_images, vm):
    img = config_image(oci_images)
    ref = push(registry, img, img.tag, "ti/config")
    pull(home, ref)
    # the image's own Entrypoint + Cmd, Env, WorkingDir, User
    r = ok(exe(home, ref))
    assert r.stdout == img.notes["output"] + "\n"
    # --env/--workdir/--user override the image's; a COMMAND replaces Cmd only
    r = ok(exe(home, "--env", "GREETING=yo", "--env", "EXTRA=1", "--workdir", "/tmp",
               "--user", "1234:5678", ref, "--",
               'echo "$GREETING from $(pwd) as $(id -u):$(id -g) extra=$EXTRA path=$PATH"'))
    assert r.stdout == "yo from /tmp as 1234:5678 extra=1 path=/bin\n"
    # -e replaces the Entrypoint; the image's user and directory still apply
    r = ok(exe(home, "-e", "/bin/sh", "--user", "nobody", ref, "--", "-c",
               'echo "$GREETING $(id -u):$(id -g) $(pwd) $(cat hello.txt)"'))
    assert r.stdout == "hi 65534:65534 /home/app/work hello from work\n"


# --------------------------------------------------------------------------------------
# layers: whiteouts, opaque dirs, hard links, symlinks, setuid, ownership
# --------------------------------------------------------------------------------------

LAYERED_SCRIPT = r"""
cd /
for p in data/file data/.wh.file dir/old1 dir/sub dir/sub/old2 dir/.wh..wh..opq; do
  if [ -e "$p" ] || [ -L "$p" ]; then echo "present: $p"; fi
done
echo "dir: $(ls -A dir | tr '\n' ' ')"
echo "keep: $(cat data/keep.txt)"
echo "overridden: $(cat data/overridden)"
echo "added: $(cat data/added)"
echo "new: $(cat dir/new)"
echo "hardlink: $(cat opt/hardlink)"
echo "links: $(stat -c %h opt/hardlink) $(stat -c %h opt/hardlink-target)"
echo "same inode: $([ "$(stat -c %i opt/hardlink)" = "$(stat -c %i opt/hardlink-target)" ] && echo yes)"
echo "symlink: $(readlink opt/symlink) $(cat opt/symlink)"
echo "abs-link: $(readlink opt/abs-link) $(head -1 opt/abs-link)"
echo "suid: $(stat -c '%a %u %g' opt/suid)"
echo "private: $(stat -c '%a %u %g' opt/private)"
echo "secret: $(stat -c '%a %u %g' opt/private/secret)"
echo "home-app: $(stat -c '%a %u %g' home/app)"
echo "tmp: $(stat -c '%a' tmp)"
echo "busybox: $(stat -c '%a %u %g' bin/busybox)"
echo "long: $(cat "$1")"
echo "root-mount: $(awk '$2 == "/" {print $3}' /proc/mounts | tail -1)"
echo written > /data/new-file && echo "writable: $(cat /data/new-file)"
"""


def test_exe_layered_image(home, registry, oci_images, vm):
    img = layered_image(oci_images)
    ref = push(registry, img, img.tag, "ti/layered")
    pull(home, ref)
    assert_stored(home, img, ref)
    r = ok(exe(home, ref, "--", "sh", "-c", LAYERED_SCRIPT, "sh", "/" + LONG_PATH))
    assert not [ln for ln in r.stdout.splitlines() if ln.startswith("present:")], r.stdout
    got = kv(r.stdout)
    got["dir"] = got["dir"].strip()
    want = {
        "dir": "new", "keep": "keep", "overridden": "v3", "added": "added in layer 3",
        "new": "new", "hardlink": "linked content",
        "links": "2 2", "same inode": "yes",  # one inode, two names
        "symlink": "hardlink-target linked content",
        "abs-link": "/etc/passwd " + PASSWD.splitlines()[0],
        "suid": "4755 1234 5678", "private": "700 1234 5678", "secret": "600 1234 5678",
        "home-app": "755 1000 1000", "tmp": "1777", "busybox": "755 0 0",
        "long": "long path", "root-mount": "overlay", "writable": "written",
    }
    # ... and nothing of that sandbox remains: a second run sees the image as it was
    r2 = ok(exe(home, ref, "--", "sh", "-c", "ls /data"))
    assert sorted(r2.stdout.split()) == ["added", "keep.txt", "overridden"]
    assert got == want  # every difference at once


# --------------------------------------------------------------------------------------
# platforms
# --------------------------------------------------------------------------------------

def test_multiarch_index_amd64_chosen(home, registry, oci_images, vm):
    img = multiarch_index(oci_images)
    ref = push(registry, img, img.tag, "ti/multi")
    r = ok(exe(home, ref, "--", "cat", "/arch"))
    assert r.stdout == "amd64\n"
    fsck_all(home)
    assert erofs(home) == {hexof(img.notes["amd64"])}
    rows = db(home, "SELECT manifest_digest, index_digest FROM images")
    assert rows == [(img.notes["amd64"], img.digest)]
    assert refs(home) == {ref: img.notes["amd64"]}
    assert hexof(img.notes["arm64"]) not in {hexof(b) for b in blobs(home)}


def test_platform_arm64_pull(home, registry, oci_images):
    img = multiarch_index(oci_images)
    ref = push(registry, img, img.tag, "ti/multi-arm")
    pull(home, ref, "--platform", "linux/arm64")
    assert erofs(home) == {hexof(img.notes["arm64"])}
    assert refs(home) == {ref: img.notes["arm64"]}
    (plat,), = db(home, "SELECT platform FROM images")
    assert "arm64" in plat


def test_docker_media_types_and_digest_refs(home, registry, oci_images):
    """Docker v2 schema 2 manifest and manifest list (the same blobs as busybox), pulled
    by tag and by digest."""
    bb = busybox_image(oci_images)
    cfg = bb.blobs[bb.manifest["config"]["digest"]]
    layer = bb.layers[0]
    man = {"schemaVersion": 2, "mediaType": MT_DOCKER_MANIFEST,
           "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                      "digest": sha256_digest(cfg), "size": len(cfg)},
           "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                       "digest": layer["digest"], "size": layer["size"]}]}
    man_bytes = json.dumps(man, indent=3).encode()
    blobs_ = [cfg, bb.blobs[layer["digest"]]]
    mdig = push_raw(registry, "ti/docker", "v2s2", man_bytes, MT_DOCKER_MANIFEST, blobs_)
    assert mdig == sha256_digest(man_bytes)
    lst = {"schemaVersion": 2, "mediaType": MT_DOCKER_LIST, "manifests": [
        {"mediaType": MT_DOCKER_MANIFEST, "digest": mdig, "size": len(man_bytes),
         "platform": {"architecture": "amd64", "os": "linux"}}]}
    ldig = push_raw(registry, "ti/docker", "list", json.dumps(lst).encode(), MT_DOCKER_LIST, [])
    host = registry.host
    pull(home, f"{host}/ti/docker:v2s2")
    assert erofs(home) == {hexof(mdig)}
    assert refs(home) == {f"{host}/ti/docker:v2s2": mdig}
    pull(home, f"{host}/ti/docker:list")
    assert refs(home)[f"{host}/ti/docker:list"] == mdig
    assert erofs(home) == {hexof(mdig)}  # one root file system for both references
    # name@digest, of a manifest and of a list
    r = pull(home, f"{host}/ti/docker@{mdig}", "-q")
    assert r.stdout == f"{host}/ti/docker@{mdig}\n"
    r = pull(home, f"{host}/ti/docker@{ldig}", "-q")
    assert r.stdout == f"{host}/ti/docker@{ldig}\n"
    assert erofs(home) == {hexof(mdig)}
    one_error(run(home, "pull", f"{host}/ti/docker@sha256:" + "0" * 64), "ti/docker")


def test_index_without_amd64(home, registry, tmp_path):
    lay = OCILayout(tmp_path / "armonly")
    arm, _, _ = lay.image([lay.layer([F("arch", "arm64\n")])], arch="arm64", variant="v8")
    s390, _, _ = lay.image([lay.layer([F("arch", "s390x\n")])], arch="s390x")
    index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [
        dict(arm, platform={"architecture": "arm64", "os": "linux", "variant": "v8"}),
        dict(s390, platform={"architecture": "s390x", "os": "linux"})]}
    lay.tag(lay.blob(json.dumps(index).encode(), MT_INDEX), "latest")
    ref = push(registry, lay.path, "latest", "ti/armonly")
    r = run(home, "pull", ref)
    err = one_error(r, "ti/armonly", "amd64", "arm64", "s390x")
    assert "linux/arm64" in err, err
    assert_empty_store(home)
    assert partials(home) == []


# --------------------------------------------------------------------------------------
# archives and imports
# --------------------------------------------------------------------------------------

def test_load_docker_archive(home, oci_images, vm):
    path = docker_archive(oci_images)
    r = ok(run(home, "load", str(path)))
    assert r.stdout == "Loaded image: docker.io/msb-test/busybox:latest\n"
    fsck_all(home)
    assert len(erofs(home)) == 1
    assert list(refs(home)) == ["docker.io/msb-test/busybox:latest"]
    # a short name finds it locally: nothing is pulled from Docker Hub
    r = ok(exe(home, "msb-test/busybox", "--", "sh", "-c", "cat /etc/passwd; stat -c '%a' /tmp"))
    assert r.stdout == PASSWD + "1777\n"


def test_load_oci_archive_needs_a_name(home, oci_images, vm):
    img = busybox_image(oci_images)
    path = oci_archive(oci_images)
    r = run(home, "load", str(path))
    one_error(r, str(path), "-n")
    assert_empty_store(home)
    r = ok(run(home, "load", "-n", "msb-test/oci:v1", str(path)))
    assert r.stdout == "Loaded image: docker.io/msb-test/oci:v1\n"
    fsck_all(home)
    assert refs(home) == {"docker.io/msb-test/oci:v1": img.digest}
    assert erofs(home) == {hexof(img.digest)}
    r = ok(exe(home, "msb-test/oci:v1", "--", "sh", "-c", "id -u; stat -c '%u %g' /home/app"))
    assert r.stdout == "0\n1000 1000\n"


def test_import_rootfs_tar(home, tmp_path, vm):
    tar = tmp_path / "rootfs.tar"
    extra = [F("etc/imported", "imported file\n", 0o640, 7, 8)]
    tar.write_bytes(tar_bytes(_busybox_members() + extra))
    r = ok(run(home, "import", str(tar), "ti-imported:v1"))
    fsck_all(home)
    assert len(erofs(home)) == 1
    (ref,), = [(k,) for k in refs(home)]
    assert ref.endswith("ti-imported:v1"), ref
    assert ref in r.stdout + r.stderr
    # gzip from stdin
    p = subprocess.run([str(MSB), "import", "-", "ti-imported:gz"], env=home, capture_output=True,
                       input=gzip.compress(tar.read_bytes()), timeout=120)
    assert p.returncode == 0, p.stderr
    fsck_all(home)
    assert len(refs(home)) == 2 and 1 <= len(erofs(home)) <= 2
    # the default command is /bin/sh: it reads the script on stdin
    r = ok(exe(home, "ti-imported:v1",
               input="stat -c '%a %u %g' /etc/imported; cat /etc/imported; echo $PATH\n"))
    lines = r.stdout.splitlines()
    assert lines[:2] == ["640 7 8", "imported file"], r.stdout
    assert "/bin" in lines[2].split(":"), r.stdout


# --------------------------------------------------------------------------------------
# concurrency, interruptions, bad data
# --------------------------------------------------------------------------------------

def _pull_together(env, ref, n=2):
    procs = [subprocess.Popen([str(MSB), "pull", ref], env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(n)]
    return [(p.wait(300), p.communicate()[1]) for p in procs]


def test_concurrent_pulls_store_once(home, registry, oci_images):
    img = layered_image(oci_images)
    ref = push(registry, img, img.tag, "ti/concurrent")
    ok(run(home, "image", "ls"))  # the store exists: see test_concurrent_pulls_new_store
    for rc, err in _pull_together(home, ref):
        assert rc == 0, err
    fsck_all(home)
    want = {img.digest, img.manifest["config"]["digest"]} | {l["digest"] for l in img.layers}
    assert blobs(home) == want
    assert erofs(home) == {hexof(img.digest)}
    assert db(home, "SELECT manifest_digest FROM images") == [(img.digest,)]
    assert refs(home) == {ref: img.digest}
    assert sorted(d for (d,) in db(home, "SELECT digest FROM image_blobs")) == sorted(want)
    assert partials(home) == []
    leftovers = [p.name for p in (store(home) / "images").iterdir()
                 if not p.name.endswith(".erofs")]
    assert leftovers == []


def test_concurrent_pulls_new_store(home, registry, oci_images, tmp_path):
    """Two pulls that both create the store (a fresh MSB_HOME), a few times over."""
    img = busybox_image(oci_images)
    ref = push(registry, img, img.tag, "ti/concurrent-new")
    failed = []
    for i in range(4):
        e = dict(home, MSB_HOME=str(tmp_path / f"home{i}"))
        for rc, err in _pull_together(e, ref):
            if rc:
                failed.append(err.strip())
        if not failed:
            assert refs(e) == {ref: img.digest}
            fsck_all(e)
    assert failed == []


def test_killed_pull_then_good_pull(home, fake_registry, tmp_path):
    img = unique_image(tmp_path, "killed", size=2 << 20)
    layer = img.layers[-1]
    fake_registry.image("ti/killed", img, "latest")
    ref = f"{fake_registry.host}/ti/killed:latest"
    cut_at = layer["size"] // 2
    fake_registry.stall(layer["digest"], cut_at)
    p = subprocess.Popen([str(MSB), "pull", ref], env=home, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert fake_registry.reached.wait(60), "msb never fetched the layer"
        deadline = time.monotonic() + 10  # give it a moment to write what it got
        while time.monotonic() < deadline and not any(
                (store(home) / "blobs" / "partial" / n).stat().st_size for n in partials(home)):
            time.sleep(0.05)
        assert p.poll() is None, p.communicate()
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    # a consistent store: nothing names the image, the layer is not a blob
    assert_empty_store(home)
    assert layer["digest"] not in blobs(home)
    assert ok(run(home, "image", "ls")).stdout.count("\n") <= 1
    fake_registry.release.set()
    r = pull(home, ref)
    assert f"msb: {ref} pulled" in r.stderr
    assert_stored(home, img, ref)
    assert partials(home) == []
    ranges = [rg for (_, _, rg) in fake_registry.blob_gets(layer["digest"])[1:] if rg]
    for rg in ranges:  # a resume, if msb resumed, starts within what it had been sent
        assert 0 < int(rg[6:].split("-")[0]) <= cut_at, ranges


def test_cut_connection_resumes_with_range(home, registry, cutting_proxy, tmp_path):
    img = unique_image(tmp_path, "cut", size=1 << 20)
    layer = img.layers[-1]
    img.push_raw(registry, "ti/cut")
    cutting_proxy.cut(layer["digest"], 300000)
    ref = f"{cutting_proxy.host}/ti/cut:latest"
    pull(home, ref)
    assert_stored(home, img, ref)
    gets = cutting_proxy.blob_gets(layer["digest"])
    assert gets[0]["cut"] and gets[0]["sent"] == 300000, gets
    ranges = [g["range"] for g in gets[1:]]
    assert ranges and ranges[0] is not None and ranges[0].startswith("bytes="), gets
    start = int(ranges[0][6:].split("-")[0])
    assert 0 < start <= 300000, ranges
    assert partials(home) == []


def test_corrupted_blob(home, registry, tmp_path):
    img = unique_image(tmp_path, "corrupt")
    layer = img.layers[-1]["digest"]
    img.push_raw(registry, "ti/corrupt")
    data = registry.storage / "docker/registry/v2/blobs/sha256" / hexof(layer)[:2] / \
        hexof(layer) / "data"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size, other bytes
    data.write_bytes(bytes(raw))
    ref = f"{registry.host}/ti/corrupt:latest"
    r = run(home, "pull", ref)
    one_error(r, "ti/corrupt", "digest")
    assert layer not in blobs(home)
    assert not any(hexof(layer) in n for n in partials(home)), partials(home)
    assert_empty_store(home)
    assert db(home, "SELECT digest FROM image_blobs") == []


def test_malformed_manifests(home, fake_registry):
    fake_registry.manifest("ti/garbage", "latest", b'{"schemaVersion": 2, "layers": [', MT_MANIFEST)
    fake_registry.manifest("ti/garbage", "index", b"\x00\xffnot json at all", MT_INDEX)
    fake_registry.manifest("ti/garbage", "nolayers",
                           json.dumps({"schemaVersion": 2, "mediaType": MT_MANIFEST,
                                       "config": "nope", "layers": 7}).encode(), MT_MANIFEST)
    for tag in ("latest", "index", "nolayers"):
        r = run(home, "pull", f"{fake_registry.host}/ti/garbage:{tag}")
        one_error(r, f"ti/garbage:{tag}")
        assert "manifest" in r.stderr or "index" in r.stderr, r.stderr
    assert_empty_store(home)
    assert blobs(home) == set()


def test_unknown_image_and_tag(home, registry, oci_images):
    img = busybox_image(oci_images)
    push(registry, img, img.tag, "ti/known")
    r = run(home, "pull", f"{registry.host}/ti/nosuch:latest")
    one_error(r, "ti/nosuch:latest", "not found in registry", registry.host)
    r = run(home, "pull", f"{registry.host}/ti/known:nosuchtag")
    one_error(r, "ti/known:nosuchtag", "not found in registry", registry.host)
    assert_empty_store(home)


def test_registry_down(home):
    port = _free_port()
    r = run(home, "pull", f"127.0.0.1:{port}/ti/down:latest")
    err = one_error(r, "ti/down", f"127.0.0.1:{port}")
    assert "connect" in err.lower() or "refused" in err.lower(), err
    assert_empty_store(home)


# --------------------------------------------------------------------------------------
# credentials
# --------------------------------------------------------------------------------------

def docker_config(env):
    p = pathlib.Path(env["DOCKER_CONFIG"]) / "config.json"
    return json.loads(p.read_text()) if p.exists() else None


def test_auth_registry_login_logout(home, auth_registry, oci_images):
    reg = auth_registry
    img = busybox_image(oci_images)
    ref = push(reg, img, img.tag, "ti/private")
    r = run(home, "pull", ref)
    no_creds = one_error(r, "msb login", reg.host)
    assert_empty_store(home)
    r = run(home, "login", "-u", reg.user, "-p", "wrong-password", reg.host)
    one_error(r, reg.host)
    cfg = docker_config(home)
    assert cfg is None or reg.host not in cfg.get("auths", {})
    r = ok(run(home, "login", "-u", reg.user, "--password-stdin", reg.host,
               input=reg.password + "\n"))
    cfg = docker_config(home)
    auth = cfg["auths"][reg.host]["auth"]
    assert base64.b64decode(auth).decode() == f"{reg.user}:{reg.password}"
    pull(home, ref)
    assert_stored(home, img, ref)
    ok(run(home, "logout", reg.host))
    assert reg.host not in docker_config(home).get("auths", {})
    r = run(home, "pull", ref)
    one_error(r, "msb login")
    assert "ti/private" in no_creds, no_creds  # every error names the image


def test_token_registry_anonymous_and_login(home, token_registry, oci_images):
    reg, ts = token_registry, token_registry.token_server
    img = busybox_image(oci_images)
    pub = push(reg, img, img.tag, "public/ti-busybox")
    priv = push(reg, img, img.tag, "private/ti-busybox")
    ts.clear()
    pull(home, pub)
    assert ts.requests and all(not q["authorization"] and q["status"] == 200
                               for q in ts.requests), ts.requests
    assert any(a["name"] == "public/ti-busybox" and a["actions"] == ["pull"]
               for q in ts.requests for a in q["granted"]), ts.requests
    ts.clear()
    r = run(home, "pull", priv)
    one_error(r, "private/ti-busybox", "msb login")
    assert ts.requests and not any(q["authorization"] for q in ts.requests)
    assert pub in refs(home) and priv not in refs(home)
    ts.clear()
    r = run(home, "login", "-u", reg.user, "-p", "nope", reg.host)
    one_error(r, reg.host)
    assert any(q["authorization"] and q["status"] == 401 for q in ts.requests), ts.requests
    ok(run(home, "login", "-u", reg.user, "-p", reg.password, reg.host))
    assert reg.host in docker_config(home)["auths"]
    ts.clear()
    pull(home, priv)
    assert refs(home)[priv] == img.digest
    assert ts.requests and all(q["authorization"] and q["user"] == reg.user
                               for q in ts.requests), ts.requests
    ok(run(home, "logout", reg.host))
    assert reg.host not in docker_config(home).get("auths", {})


# --------------------------------------------------------------------------------------
# a hostile layer set
# --------------------------------------------------------------------------------------

HOSTILE_SCRIPT = r"""
for p in /escape /escape2 /abs/path /passwd-link; do
  if [ -f "$p" ]; then echo "$p: $(head -1 "$p")"; else echo "$p: missing"; fi
done
echo "devices: $(stat -c '%F %t:%T' /evil-null /evil-disk 2>&1 | tr '\n' ' ')"
echo "outside: $(ls -A /tmp/msb-hostile-outside /tmp/msb-hostile-outside-rel 2>&1 | tr '\n' ' ')"
"""
HOSTILE_NAMES = {"escape", "escape2", "abs", "pwned", "link", "rlink", "passwd-link", "evil-null",
                 "evil-disk"}


def _tree(root, skip):
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if pathlib.Path(dirpath, d) not in skip]
        for n in dirnames + filenames:
            out.add(os.path.relpath(os.path.join(dirpath, n), root))
    return out


class Outside:
    """What a hostile layer could touch outside the store, before and after."""

    PATHS = [pathlib.Path(p) for p in (HOSTILE_OUTSIDE, HOSTILE_OUTSIDE + "-rel", "/escape",
                                       "/escape2", "/abs", "/passwd-link", "/evil-null",
                                       "/evil-disk", "/link", "/rlink")]

    def __init__(self, tmp_path, env):
        for p in self.PATHS[:2]:  # leftovers of an earlier run would hide a new escape
            if p.is_symlink() or p.is_file():
                p.unlink()
            elif p.exists():
                shutil.rmtree(p)
        self.tmp, self.home = tmp_path, store(env)
        self.skip = {self.home, tmp_path / "layouts"}  # the store; the test's own files
        self.pre = {p for p in self.PATHS if os.path.lexists(p)}
        self.passwd = self._passwd()
        self.tree = _tree(tmp_path, self.skip)

    @staticmethod
    def _passwd():
        st = os.stat("/etc/passwd")
        return st.st_ino, st.st_nlink, st.st_mtime_ns, st.st_size

    def check(self):
        for p in self.PATHS:
            if p not in self.pre:
                assert not os.path.lexists(p), p
        assert _tree(self.tmp, self.skip) == self.tree
        assert self._passwd() == self.passwd
        assert {p.name for p in self.home.iterdir()} <= STORE_TOP
        for dirpath, dirnames, filenames in os.walk(self.home):
            if pathlib.Path(dirpath) == self.home:
                dirnames[:] = [d for d in dirnames if d != "snapshots"]
            assert not HOSTILE_NAMES & set(dirnames + filenames), (dirpath, dirnames, filenames)
            for n in filenames:
                mode = os.lstat(os.path.join(dirpath, n)).st_mode
                assert not (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)), os.path.join(dirpath, n)


def test_hostile_layers_stay_inside(home, registry, oci_images, tmp_path, vm):
    cwd = tmp_path / "w" / "x" / "y" / "z" / "cwd"  # where ../../ of msb's cwd would land
    cwd.mkdir(parents=True)
    outside = Outside(tmp_path, home)
    # every kind at once, then each kind alone: a clean success or a clean error
    pulled = []
    for kind in ("all",) + HOSTILE_KINDS:
        img = hostile_image(oci_images, kind)
        img.push_raw(registry, f"ti/hostile-{kind}")
        ref = f"{registry.host}/ti/hostile-{kind}:latest"
        r = run(home, "pull", ref, cwd=cwd)
        if r.returncode:
            one_error(r, f"ti/hostile-{kind}")
            assert ref not in refs(home) and hexof(img.digest) not in erofs(home)
        else:
            assert_stored(home, img, ref)
            if kind != "all":
                pulled.append(kind)
        if kind == "all" and r.returncode:
            assert_empty_store(home)
        outside.check()
        assert os.listdir(cwd) == []
    fsck_all(home)
    # the guest sees what those layers made, inside the image only
    assert pulled, "every hostile layer was refused: nothing to look at in a guest"
    lay = OCILayout(tmp_path / "layouts" / "hostile-ok")
    mdesc, _, _ = lay.image([_base_layer(lay)] + [lay.layer(_hostile_layer(k)) for k in pulled])
    lay.tag(mdesc, "latest")
    ref = push(registry, lay.path, "latest", "ti/hostile-ok")
    r = ok(exe(home, ref, "--", "sh", "-c", HOSTILE_SCRIPT))
    outside.check()
    got = kv(r.stdout)
    want = dict(got)
    if "dotdot" in pulled:
        want["/escape"], want["/escape2"] = "escaped via ..", "escaped 2"
    if "absolute" in pulled:
        want["/abs/path"] = "absolute member"
    if "hardlink_escape" in pulled:  # the image's own /etc/passwd, not the host's
        want["/passwd-link"] = PASSWD.splitlines()[0]
    if "device" in pulled:
        want["devices"] = "character special file 1:3 block special file 8:0 "
    assert got == want, r.stdout
    assert "pwned" not in got["outside"], got


# --------------------------------------------------------------------------------------
# image ls / rm / prune
# --------------------------------------------------------------------------------------

def test_image_ls_rm_prune(home, registry, oci_images, tmp_path):
    bb = busybox_image(oci_images)
    cf = config_image(oci_images)
    ref_bb = push(registry, bb, bb.tag, "ti/ls-busybox")
    ref_cf = push(registry, cf, cf.tag, "ti/ls-config")
    pull(home, ref_bb)
    pull(home, ref_cf)
    r = ok(run(home, "image", "ls"))
    assert ref_bb in r.stdout and ref_cf in r.stdout
    assert bb.digest[:19] in r.stdout
    r = ok(run(home, "image", "ls", "--digests"))
    assert bb.digest in r.stdout and cf.digest in r.stdout
    shared = bb.layers[0]["digest"]
    assert cf.layers[0]["digest"] == shared
    # rm: the reference and what only it used go; the shared layer stays
    ok(run(home, "image", "rm", ref_cf))
    assert refs(home) == {ref_bb: bb.digest}
    assert erofs(home) == {hexof(bb.digest)}
    only_cf = {cf.digest, cf.manifest["config"]["digest"], cf.layers[1]["digest"]}
    assert not only_cf & blobs(home)
    assert shared in blobs(home)
    assert db(home, "SELECT manifest_digest FROM images") == [(bb.digest,)]
    r = ok(run(home, "image", "ls"))
    assert ref_cf not in r.stdout and ref_bb in r.stdout
    one_error(run(home, "image", "rm", f"{registry.host}/ti/never-pulled:latest"),
              "ti/never-pulled")
    # prune: a tag that moved leaves the old image unreferenced; a stray blob too
    tag = "ti/ls-moving"
    push(registry, cf, cf.tag, tag)
    ref_mv = f"{registry.host}/{tag}:latest"
    pull(home, ref_mv)
    other = unique_image(tmp_path, "moved")
    other.push_raw(registry, tag)
    pull(home, ref_mv)
    assert refs(home)[ref_mv] == other.digest
    stray = b"a blob nobody uses\n"
    (store(home) / "blobs" / "sha256" / hexof(sha256_digest(stray))).write_bytes(stray)
    ok(run(home, "image", "prune"))
    assert erofs(home) == {hexof(bb.digest), hexof(other.digest)}
    assert sha256_digest(stray) not in blobs(home)
    assert not only_cf & blobs(home)
    want = set()
    for i in (bb, other):
        want |= {i.digest, i.manifest["config"]["digest"]} | {l["digest"] for l in i.layers}
    assert blobs(home) == want
    assert refs(home) == {ref_bb: bb.digest, ref_mv: other.digest}
    assert sorted(d for (d,) in db(home, "SELECT manifest_digest FROM images")) == \
        sorted([bb.digest, other.digest])
    r = ok(run(home, "image", "ls"))
    assert ref_bb in r.stdout and ref_mv in r.stdout
    ok(run(home, "image", "rm", ref_bb, ref_mv))
    assert_empty_store(home)
    assert blobs(home) == set()


def test_full_disk(home, registry, oci_images, tmp_path):
    """A store on a disk too small for the image's root file system: one error
    that names the image and says the disk is full; no image file, no record,
    and the layers that did fit stay complete. (A tmpfs mounted in a user
    namespace of our own: no root needed.)"""
    bb = busybox_image(oci_images)
    ref = push(registry, bb, bb.tag, "ti/full-disk")
    small = tmp_path / "small"
    small.mkdir()
    script = ('mount -t tmpfs -o size=1600k tmpfs "$1" && MSB_HOME="$1/h" "$2" pull "$3"; '
              'rc=$?; ls "$1/h/images"; exit $rc')
    r = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script,
                        "sh", str(small), str(MSB), ref],
                       env=home, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("msb: error:")]
    assert len(err) == 1 and ref in err[0] and "full" in err[0], r.stderr
    assert not [n for n in r.stdout.split() if n.endswith(".erofs") or ".tmp" in n], r.stdout


# --------------------------------------------------------------------------------------
# the user's terminal and signals
# --------------------------------------------------------------------------------------

GUEST_TTY_SCRIPT = ('tty; stty size; trap "stty size; exit 5" WINCH; '
                    'trap "echo got-INT; exit 7" INT; echo READY; '
                    'while true; do sleep 0.1; done')


def test_exe_terminal(home, registry, oci_images, vm):
    """stdin a terminal: the command gets a pty of the terminal's size, a resize
    reaches it as SIGWINCH, Ctrl-C (a byte, in raw mode) as SIGINT, and msb's
    exit status is the command's."""
    img = busybox_image(oci_images)
    ref = push(registry, img, img.tag, "ti/busybox-tty")
    pull(home, ref)
    for action, want_rc, want_out in (("resize", 5, b"33 101"), ("ctrl-c", 7, b"got-INT")):
        master, slave = os.openpty()
        pty_winsize(master, 24, 80)
        p = subprocess.Popen([str(MSB), *EXE, ref, "--", "sh", "-c", GUEST_TTY_SCRIPT],
                             env=home, stdin=slave, stdout=slave, stderr=slave,
                             start_new_session=True)
        os.close(slave)
        try:
            out = pty_read_until(master, b"READY")
            assert b"/dev/pts/" in out and b"24 80" in out, out
            if action == "resize":
                pty_winsize(master, 33, 101)
                p.send_signal(signal.SIGWINCH)
            else:
                os.write(master, b"\x03")
            out += pty_read_until(master, want_out, timeout=60)
            assert p.wait(timeout=60) == want_rc, out
            assert want_out in out, out
        finally:
            if p.poll() is None:
                p.kill()
            os.close(master)


def test_exe_signal_forwarded(home, registry, oci_images, vm):
    """Without a terminal, SIGINT to msb reaches the command (its trap runs and
    its exit status is msb's); the sandbox is gone afterwards."""
    img = busybox_image(oci_images)
    ref = push(registry, img, img.tag, "ti/busybox-sig")
    pull(home, ref)
    p = subprocess.Popen([str(MSB), *EXE, ref, "--", "sh", "-c",
                          'trap "echo got-INT; exit 9" INT; echo READY; '
                          'while true; do sleep 0.1; done'],
                         env=home, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    assert p.stdout.readline() == b"READY\n"
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 9, err
    assert out == b"got-INT\n"
    assert not list((store(home) / "run").glob("*")), "the sandbox's run directory is left"


def _procs_mentioning(text):
    """pids whose command line mentions @text (other than this test's)."""
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            cmd = open(f"/proc/{p}/cmdline", "rb").read().decode(errors="replace")
            state = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmd and state != "Z":
            pids.append(int(p))
    return pids


def test_exe_killed_leaves_nothing(home, registry, oci_images, vm):
    """SIGKILL to msb exe: its VM (msb-vmm, or QEMU for the portable host) dies
    with it, and the next msb cleans the run directory it could not."""
    img = busybox_image(oci_images)
    ref = push(registry, img, img.tag, "ti/busybox-kill")
    pull(home, ref)
    h = str(store(home))
    p = subprocess.Popen([str(MSB), *EXE, ref, "--", "sh", "-c", "echo READY; sleep 600"],
                         env=home, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    assert p.stdout.readline() == b"READY\n"
    vms = [pid for pid in _procs_mentioning(h) if pid != p.pid]
    assert vms, "no VM process names the store"
    p.kill()
    p.wait(timeout=30)
    end = time.monotonic() + 30
    while any(pid in _procs_mentioning(h) for pid in vms) and time.monotonic() < end:
        time.sleep(0.2)
    assert not [pid for pid in vms if pid in _procs_mentioning(h)], "the VM outlived msb"
    r = exe(home, ref, "--", "true")
    assert r.returncode == 0, r.stderr
    assert not list((store(home) / "run").glob("*")), "a run directory is left"


def test_exe_start_failures_and_new_workdir(home, registry, oci_images, vm):
    """A working directory the image lacks is made (as docker run does); a
    program that is not there exits 127, a user the image lacks 126, each
    with one error line."""
    img = busybox_image(oci_images)
    ref = push(registry, img, img.tag, "ti/busybox-start")
    pull(home, ref)
    r = exe(home, "--workdir", "/made/here", ref, "--", "sh", "-c", 'pwd; stat -c "%a %u" .')
    assert (r.returncode, r.stdout) == (0, "/made/here\n755 0\n"), r.stderr
    r = exe(home, "-e", "no-such-program", ref)
    assert r.returncode == 127, r.stderr
    assert "no-such-program" in one_error_line(r)
    r = exe(home, "--user", "nosuch", ref, "--", "id")
    assert r.returncode == 126, r.stderr
    assert "unable to find user nosuch" in one_error_line(r)


def one_error_line(r):
    errs = [ln for ln in r.stderr.splitlines() if ln.startswith("msb: error:")]
    assert len(errs) == 1, r.stderr
    return errs[0]
