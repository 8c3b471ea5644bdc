"""The registry/image/proxy fixtures in registry.py work (checked with skopeo and urllib)."""
import base64
import gzip
import hashlib
import http.client
import io
import json
import os
import subprocess
import tarfile

import pytest

from registry import *  # noqa: F401,F403
from registry import _http


def inspect(ref, *extra, creds=None):
    args = ["inspect", "--tls-verify=false", *extra]
    if creds:
        args += ["--creds", f"{creds[0]}:{creds[1]}"]
    else:
        args += ["--no-creds"]
    return skopeo(*args, "docker://" + ref, check=False)


def members(blob, media_type):
    if media_type == MT_LAYER_GZIP:
        raw = gzip.decompress(blob)
    elif media_type == MT_LAYER_ZSTD:
        raw = subprocess.run(["zstd", "-d", "-c"], input=blob, capture_output=True,
                             check=True).stdout
    else:
        raw = blob
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        return {m.name: m for m in tf.getmembers()}


def test_registry_push_and_inspect(registry, oci_images):
    assert registry.host.startswith("127.0.0.1:") and registry.url == "http://" + registry.host
    st, _, body = _http("GET", registry.url + "/v2/")
    assert st == 200
    img = busybox_image(oci_images)
    assert busybox_image(oci_images) is img  # cached per session
    ref = push(registry, img.layout, img.tag, "test/busybox")
    r = inspect(ref)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["Digest"] == img.digest
    assert info["Architecture"] == "amd64" and len(info["Layers"]) == 1
    c = registry.client()
    body, ctype, digest = c.get_manifest("test/busybox", "latest")
    assert (ctype, digest) == (MT_MANIFEST, img.digest) and body == img.manifest_bytes
    layer = img.layers[0]
    m = members(c.get_blob("test/busybox", layer["digest"]), layer["mediaType"])
    assert m["bin/sh"].issym() and m["bin/sh"].linkname == "busybox"
    assert m["tmp"].mode == 0o1777 and (m["home/app"].uid, m["home/app"].gid) == (1000, 1000)
    assert m["etc/passwd"].size and m["bin/busybox"].mode == 0o755
    # delete is enabled
    assert c.delete_manifest("test/busybox", img.digest) == 202
    assert inspect(ref).returncode != 0


def test_busybox_unpacks_and_runs(oci_images, tmp_path):
    img = busybox_image(oci_images)
    bundle = tmp_path / "bundle"
    rootless = ["--rootless"] if os.geteuid() else []
    subprocess.run(["umoci", "unpack", *rootless, "--image", f"{img.layout}:{img.tag}",
                    str(bundle)], check=True, capture_output=True)
    root = bundle / "rootfs"
    out = subprocess.run([str(root / "bin/sh"), "-c", "echo ok; id -u >/dev/null"],
                         capture_output=True, text=True, check=True).stdout
    assert out == "ok\n"
    assert "app:x:1000:1000::/home/app:/bin/sh" in (root / "etc/passwd").read_text()
    assert os.stat(root / "tmp").st_mode & 0o7777 == 0o1777


def test_auth_registry(auth_registry, oci_images):
    reg = auth_registry
    assert (reg.user, reg.password) == ("msbuser", "s3cret-pw")
    st, h, _ = _http("GET", reg.url + "/v2/")
    assert st == 401 and h["WWW-Authenticate"].startswith("Basic ")
    bad = "Basic " + base64.b64encode(b"msbuser:wrong").decode()
    assert _http("GET", reg.url + "/v2/", headers={"Authorization": bad})[0] == 401
    img = busybox_image(oci_images)
    ref = push(reg, img, img.tag, "private/busybox")  # uses reg.creds
    assert inspect(ref).returncode != 0
    r = inspect(ref, creds=reg.creds)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Digest"] == img.digest


def test_token_registry_flow(token_registry, oci_images):
    reg, ts = token_registry, token_registry.token_server
    st, h, _ = _http("GET", reg.url + "/v2/")
    assert st == 401
    scheme, _, params = h["WWW-Authenticate"].partition(" ")
    assert scheme == "Bearer" and f'realm="{ts.realm}"' in params
    assert 'service="msb-test-registry"' in params
    img = busybox_image(oci_images)
    ts.clear()
    push(reg, img, img.tag, "private/busybox")
    push(reg, img, img.tag, "public/busybox")
    assert ts.requests and all(r["authorization"] and r["status"] == 200 for r in ts.requests)
    assert any(r["query"].get("scope") == ["repository:private/busybox:pull,push"]
               for r in ts.requests), ts.requests
    # anonymous: public pull works, private does not; credentials open private
    ts.clear()
    r = inspect(f"{reg.host}/public/busybox:latest")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Digest"] == img.digest
    assert inspect(f"{reg.host}/private/busybox:latest").returncode != 0
    anon = [r for r in ts.requests if not r["authorization"]]
    assert anon and all(r["status"] == 200 for r in anon)
    granted = {a["name"]: a["actions"] for r in anon for a in r["granted"]}
    assert granted == {"public/busybox": ["pull"], "private/busybox": []}
    assert inspect(f"{reg.host}/private/busybox:latest", creds=reg.creds).returncode == 0
    # wrong credentials: the token server says 401
    ts.clear()
    assert inspect(f"{reg.host}/private/busybox:latest",
                   creds=("msbuser", "nope")).returncode != 0
    assert ts.requests and ts.requests[-1]["status"] == 401
    # the urllib client does the same dance
    c = reg.client()
    assert c.get_manifest("private/busybox", "latest")[2] == img.digest
    with pytest.raises(RuntimeError):
        RegistryClient(reg, creds=False).get_manifest("private/busybox", "latest")
    assert RegistryClient(reg, creds=False).get_manifest("public/busybox", "latest")[2] == \
        img.digest


def test_token_kid_mode_and_bad_tokens(tmp_path, oci_images):
    reg = start_registry(tmp_path / "kid", auth="token", token_key_mode="kid")
    try:
        ts = reg.token_server
        assert len(ts.kid.split(":")) == 12
        img = busybox_image(oci_images)
        push(reg, img, img.tag, "x/busybox")
        assert reg.client().get_manifest("x/busybox", "latest")[2] == img.digest
        access = [{"type": "repository", "name": "x/busybox", "actions": ["pull"]}]
        url = reg.url + "/v2/x/busybox/manifests/latest"
        hdr = {"Accept": MT_MANIFEST}

        def status(tok):
            return _http("GET", url, headers=dict(hdr, Authorization="Bearer " + tok))[0]
        assert status(ts.make_token(USER, access)) == 200
        assert status(ts.sign(json.loads(json.dumps({
            "iss": ts.issuer, "sub": "u", "aud": ts.service, "exp": 2**31 - 1, "nbf": 0,
            "iat": 0, "jti": "j", "access": access})), key_mode="x5c")) == 200
        assert status(ts.make_token(USER, access, expires_in=-3600)) == 401
        assert status(ts.make_token(USER, access, audience="other")) == 401
        assert status(ts.make_token(USER, access, issuer="other")) == 401
        assert status(ts.make_token(USER, [])) == 401
        ts.fail_next(503)
        assert _http("GET", ts.realm + "?service=msb-test-registry")[0] == 503
    finally:
        reg.stop()
        reg.token_server.stop()
    assert reg.proc is None


def test_layered_image(registry, oci_images, tmp_path):
    img = layered_image(oci_images)
    assert [l["mediaType"] for l in img.layers] == [MT_LAYER_GZIP, MT_LAYER_GZIP, MT_LAYER_ZSTD,
                                                    MT_LAYER_TAR]
    ref = push(registry, img, img.tag, "test/layered")
    info = json.loads(inspect(ref).stdout)
    assert info["Digest"] == img.digest and len(info["Layers"]) == 4
    c = registry.client()
    ls = [members(c.get_blob("test/layered", l["digest"]), l["mediaType"]) for l in img.layers]
    assert "data/.wh.file" in ls[2] and "dir/.wh..wh..opq" in ls[2]
    assert ls[2]["opt/hardlink"].islnk() and ls[2]["opt/hardlink"].linkname == \
        "opt/hardlink-target"
    assert ls[2]["opt/symlink"].issym()
    suid = ls[3]["opt/suid"]
    assert (suid.mode, suid.uid, suid.gid) == (0o4755, 1234, 5678)
    # diff_ids match the uncompressed layers
    for l, d in zip(img.layers, img.config["rootfs"]["diff_ids"]):
        raw = c.get_blob("test/layered", l["digest"])
        if l["mediaType"] == MT_LAYER_GZIP:
            raw = gzip.decompress(raw)
        elif l["mediaType"] == MT_LAYER_ZSTD:
            raw = subprocess.run(["zstd", "-d", "-c"], input=raw, capture_output=True).stdout
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == d
    # an independent unpacker agrees with .expected / .absent (umoci 0.4.7 has no zstd:
    # let skopeo recompress every layer to gzip first)
    conv, bundle = tmp_path / "gz", tmp_path / "b"
    skopeo("copy", "--quiet", "--dest-compress", "--dest-compress-format", "gzip",
           f"oci:{img.layout}:{img.tag}", f"oci:{conv}:{img.tag}", workdir=tmp_path)
    rootless = ["--rootless"] if os.geteuid() else []
    subprocess.run(["umoci", "unpack", *rootless, "--image", f"{conv}:{img.tag}",
                    str(bundle)], check=True, capture_output=True)
    root = bundle / "rootfs"
    for p in img.absent:
        assert not os.path.lexists(root / p), p
    for p, e in img.expected.items():
        st = os.lstat(root / p)
        if "content" in e:
            assert (root / p).read_bytes() == e["content"], p
        if "target" in e:
            assert os.readlink(root / p) == e["target"]
        if "mode" in e:
            assert st.st_mode & 0o7777 == e["mode"], p
        if "uid" in e and os.geteuid() == 0:
            assert (st.st_uid, st.st_gid) == (e["uid"], e["gid"]), p
    assert os.stat(root / "opt/hardlink").st_ino == os.stat(root / "opt/hardlink-target").st_ino


def test_config_image(registry, oci_images):
    img = config_image(oci_images)
    ref = push(registry, img, img.tag, "test/config")
    info = json.loads(skopeo("inspect", "--config", "--tls-verify=false",
                             "docker://" + ref).stdout)
    cfg = info["config"]
    assert cfg["User"] == "app" and cfg["WorkingDir"] == "/home/app/work"
    assert cfg["Env"] == ["GREETING=hi", "PATH=/bin"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-c"]
    assert cfg["Cmd"] == ["echo $GREETING from $(pwd) as $(id -u)"]


def test_multiarch_index(registry, oci_images):
    img = multiarch_index(oci_images)
    assert img.media_type == MT_INDEX
    ref = push(registry, img, img.tag, "test/multi")
    c = registry.client()
    body, ctype, digest = c.get_manifest("test/multi", "latest")
    assert ctype == MT_INDEX and digest == img.digest
    plats = [m["platform"]["architecture"] for m in json.loads(body)["manifests"]]
    assert plats == ["arm64", "amd64", "unknown"]
    amd = json.loads(inspect(ref).stdout)  # skopeo picks the platform, reports the index digest
    assert amd["Architecture"] == "amd64" and amd["Digest"] == img.digest
    assert amd["Layers"] == [l["digest"] for l in img.notes["amd64_manifest"]["layers"]]
    arm = json.loads(inspect(ref, "--override-arch", "arm64").stdout)
    assert arm["Architecture"] == "arm64" and len(arm["Layers"]) == 1
    # the amd64 manifest is pullable by digest and its top layer says amd64
    man = json.loads(c.get_manifest("test/multi", img.notes["amd64"])[0])
    top = man["layers"][-1]
    m = members(c.get_blob("test/multi", top["digest"]), top["mediaType"])
    assert "arch" in m


def test_hostile_push_raw(registry, oci_images):
    img = hostile_image(oci_images)
    digest = img.push_raw(registry, "test/hostile")
    assert digest == img.digest
    c = registry.client()
    names = set()
    for l in img.layers[1:]:
        names |= set(members(c.get_blob("test/hostile", l["digest"]), l["mediaType"]))
    assert {"../../escape", "/abs/path", "link", "link/pwned", "passwd-link",
            "evil-null"} <= names
    # the single-kind variants and skopeo can push these blobs too
    one = hostile_image(oci_images, "symlink_escape")
    assert len(one.layers) == 2
    push(registry, one, one.tag, "test/hostile-symlink")
    assert json.loads(inspect(f"{registry.host}/test/hostile-symlink:latest").stdout)[
        "Digest"] == one.digest
    # push_raw takes arbitrary manifests (here a docker v2 schema 2 one)
    cfg = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    man = {"schemaVersion": 2, "mediaType": MT_DOCKER_MANIFEST,
           "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                      "digest": sha256_digest(cfg), "size": len(cfg)}, "layers": []}
    d = push_raw(registry, "test/raw", "v1", json.dumps(man).encode(), MT_DOCKER_MANIFEST, [cfg])
    assert c.get_manifest("test/raw", "v1")[1:] == (MT_DOCKER_MANIFEST, d)


def test_archives(oci_images):
    d = docker_archive(oci_images)
    o = oci_archive(oci_images)
    assert d.is_file() and o.is_file()
    r = json.loads(skopeo("inspect", f"docker-archive:{d}").stdout)
    assert r["Architecture"] == "amd64" and len(r["Layers"]) == 1
    r = json.loads(skopeo("inspect", f"oci-archive:{o}:latest").stdout)
    assert r["Digest"] == busybox_image(oci_images).digest
    with tarfile.open(d) as tf:
        assert "manifest.json" in tf.getnames()


def test_cutting_proxy(registry, cutting_proxy, oci_images):
    img = busybox_image(oci_images)
    push(registry, img, img.tag, "test/cut")
    layer = img.layers[0]
    cutting_proxy.cut(layer["digest"], 1000)
    url = f"{cutting_proxy.url}/v2/test/cut/blobs/{layer['digest']}"
    conn = http.client.HTTPConnection(cutting_proxy.host, timeout=10)
    conn.request("GET", url)
    resp = conn.getresponse()
    assert resp.status == 200 and int(resp.headers["Content-Length"]) == layer["size"]
    with pytest.raises(http.client.IncompleteRead) as e:
        resp.read()
    conn.close()
    part = e.value.partial
    assert len(part) == 1000
    st, h, rest = _http("GET", url, headers={"Range": f"bytes={len(part)}-"})
    assert st == 206
    assert sha256_digest(part + rest) == layer["digest"]
    assert cutting_proxy.ranges(layer["digest"]) == [None, "bytes=1000-"]
    assert [r["cut"] for r in cutting_proxy.blob_gets(layer["digest"])] == [True, False]
    # later requests pass through; skopeo works through it, keep-alive and all
    r = inspect(f"{cutting_proxy.host}/test/cut:latest")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Digest"] == img.digest
    assert cutting_proxy.count("GET", "/manifests/") >= 1
    c = RegistryClient(cutting_proxy.url)
    assert sha256_digest(c.get_blob("test/cut", layer["digest"])) == layer["digest"]


def test_cutting_proxy_token_registry(token_registry, oci_images, tmp_path):
    img = busybox_image(oci_images)
    push(token_registry, img, img.tag, "public/cut")
    layer = img.layers[0]["digest"]
    with CuttingProxy(token_registry) as p:
        p.cut(layer, 5000)

        def copy(n):
            return skopeo("copy", "--quiet", "--src-tls-verify=false", "--src-no-creds",
                          f"docker://{p.host}/public/cut:latest", f"oci:{tmp_path / n}:latest",
                          check=False, workdir=tmp_path)
        r = copy("first")  # skopeo 1.9 does not resume: the cut is visible to a real client
        assert r.returncode != 0 and "EOF" in r.stderr
        assert copy("second").returncode == 0
        gets = p.blob_gets(layer)
        assert [(g["cut"], g["sent"]) for g in gets] == [(True, 5000), (False, None)]
        assert all(g["authorization"] for g in gets)  # bearer tokens pass through
