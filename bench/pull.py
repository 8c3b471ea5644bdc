#!/usr/bin/python3
"""bench/pull.py: `msb pull` against `skopeo copy` of the same image from the same local registry.

The image (built once per run in a temporary directory, gzip layers with the
default level): busybox plus five data layers, 227 MiB of tar streams and
180 MiB of gzip blobs:

    L0  busybox and its applet links (tests/integration/registry.py)
    L1  6 files of 8 MiB, random (incompressible)
    L2  3000 files of 16 KiB in 30 directories, 4 bits of entropy a byte
    L3  48 files of 1 MiB, random
    L4  4 files of 12 MiB, 4 bits a byte
    L5  2000 files of 4 KiB (4 bits a byte) and 4 of 6 MiB random

It is pushed with skopeo to Debian's docker-registry on 127.0.0.1 (started
here, with its own storage). Then RUNS rounds (default 5), alternating which
goes first, each timing from spawn to exit:

    msb pull 127.0.0.1:PORT/bench/pull:latest   into an empty MSB_HOME: the
        blobs fetched (3 at a time), verified, fsynced, then the erofs root
        written from the layers (part of the time, as for every msb pull);
        its step lines on stderr (a pipe) say when the downloads were done
    skopeo copy --src-tls-verify=false docker://… oci:DIR:latest   into an
        empty directory: the blobs as they are

Each destination is deleted after its run (not timed), and the page cache is
written back (sync) before each. Target (printed, never enforced): msb's
median not above skopeo's. Writes bench/results/pull-<UTC time>.json.

    /usr/bin/python3 bench/pull.py [RUNS]
"""
import datetime
import gzip
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import registry as R  # noqa: E402  (the tests' registry and OCI layout builders)

MSB = ROOT / "build" / "bin" / "msb"
MiB = 1 << 20
NAME = "bench/pull"
TARGET = 1.0  # msb / skopeo, medians
LAYER_MARK = "msb: layer "  # msb pull's line for each layer in the store (the last: all are)
# 256 byte values onto 16 letters: 4 bits of entropy a byte, gzip keeps about 60%
HALF = bytes(97 + (i & 15) for i in range(256))


def random_bytes(n):
    return os.urandom(n)


def half_bytes(n):
    return os.urandom(n).translate(HALF)


def data_layer(layout, files):
    """files: (path, bytes) pairs; directories are made as needed."""
    members, dirs = [], set()
    for path, data in files:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in dirs:
                dirs.add(d)
                members.append(R.D(d))
        members.append(R.F(path, data))
    return layout.layer(members, "gzip")


def build_image(path):
    lay = R.OCILayout(path)
    layers = [R._base_layer(lay)]
    layers.append(data_layer(lay, [(f"opt/big/r{i}.bin", random_bytes(8 * MiB)) for i in range(6)]))
    layers.append(data_layer(lay, [(f"usr/share/many/d{i % 30:02d}/f{i:04d}.txt",
                                    half_bytes(16 << 10)) for i in range(3000)]))
    layers.append(data_layer(lay, [(f"usr/lib/mid/m{i:02d}.so", random_bytes(MiB))
                                   for i in range(48)]))
    layers.append(data_layer(lay, [(f"var/lib/data/h{i}.dat", half_bytes(12 * MiB))
                                   for i in range(4)]))
    layers.append(data_layer(lay, [(f"etc/small/s{i:04d}.conf", half_bytes(4 << 10))
                                   for i in range(2000)] +
                                  [(f"srv/blob/b{i}.bin", random_bytes(6 * MiB)) for i in range(4)]))
    mdesc, manifest, config = lay.image(layers)
    lay.tag(mdesc, "latest")
    packed = sum(d["size"] for d, _ in layers)
    return manifest, packed


def unpacked_size(layout):
    """Bytes of file data in the layers (decompressed tar streams)."""
    total = 0
    idx = json.loads((layout / "index.json").read_text())
    man = json.loads((layout / "blobs" / "sha256" /
                      idx["manifests"][0]["digest"].split(":")[1]).read_bytes())
    for d in man["layers"]:
        with gzip.open(layout / "blobs" / "sha256" / d["digest"].split(":")[1]) as f:
            while True:
                b = f.read(8 * MiB)
                if not b:
                    break
                total += len(b)
    return total


def host_mode():
    try:
        out = subprocess.run([str(MSB), "info"], capture_output=True, text=True, timeout=120).stdout
    except OSError:
        return "unknown"
    for line in out.splitlines():
        if line.startswith("host mode:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def version(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, IndexError):
        return "unknown"


def timed(argv, env, mark=None):
    """Runs argv; returns (ms to exit, ms to the last stderr line containing mark or None)."""
    os.sync()
    t0 = time.monotonic()
    p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    at, err = None, []
    for line in p.stderr:
        if mark and mark in line:
            at = (time.monotonic() - t0) * 1000
        err.append(line)
    p.wait()
    ms = (time.monotonic() - t0) * 1000
    if p.returncode:
        sys.exit(f"pull.py: {' '.join(argv)} failed ({p.returncode}):\n{''.join(err)}")
    return ms, at


def dir_bytes(path):
    return sum(p.stat().st_blocks * 512 for p in pathlib.Path(path).rglob("*") if p.is_file())


def stats(v):
    s = sorted(v)
    return {"median": round(statistics.median(s), 1), "min": round(s[0], 1),
            "max": round(s[-1], 1), "runs": [round(x, 1) for x in v]}


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    if runs < 1:
        sys.exit("usage: bench/pull.py [RUNS >= 1]")
    if not MSB.exists():
        sys.exit(f"pull.py: no {MSB}; run make")
    mode = host_mode()
    print(f"host mode: {mode} (msb pull runs no VM; the figure does not depend on it)")
    work = pathlib.Path(tempfile.mkdtemp(prefix="msb-bench-pull-"))
    reg = None
    try:
        t0 = time.monotonic()
        manifest, packed = build_image(work / "layout")
        unpacked = unpacked_size(work / "layout")
        print(f"image: {len(manifest['layers'])} gzip layers, {packed / MiB:.1f} MiB of blobs, "
              f"{unpacked / MiB:.1f} MiB unpacked (built in {time.monotonic() - t0:.1f} s)")
        reg = R.start_registry(work / "registry")
        ref = R.push(reg, work / "layout", "latest", NAME)
        shutil.rmtree(work / "layout")
        print(f"registry: docker-registry at {reg.host} ({version(['docker-registry', '--version'])})")
        print(f"skopeo: {version(['skopeo', '--version'])}")
        sys.stdout.flush()

        env_msb = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env_sk = R._skopeo_env(work)
        msb_ms, msb_dl, sk_ms, msb_bytes, sk_bytes = [], [], [], [], []

        def msb_run(i):
            home = work / f"msb-{i}"
            env = dict(env_msb, MSB_HOME=str(home))
            # not a terminal: one line per step, one per layer once it is in
            # the store; the erofs root is written meanwhile, each layer as
            # soon as the ones below it are there, and finished after the last
            ms, dl = timed([str(MSB), "pull", ref], env, LAYER_MARK)
            if dl is None:
                sys.exit(f"pull.py: msb pull never said '{LAYER_MARK}'")
            msb_dl.append(dl)
            erofs = list((home / "images").glob("*.erofs"))
            if len(erofs) != 1:
                sys.exit(f"pull.py: msb pull left {len(erofs)} erofs images in {home}")
            msb_bytes.append(dir_bytes(home))
            shutil.rmtree(home)
            return ms

        def skopeo_run(i):
            dest = work / f"oci-{i}"
            ms, _ = timed(["skopeo", "--insecure-policy", "copy", "--quiet",
                           "--src-tls-verify=false", f"docker://{ref}", f"oci:{dest}:latest"],
                          env_sk)
            sk_bytes.append(dir_bytes(dest))
            shutil.rmtree(dest)
            return ms

        # one warm-up of each (registry and page cache), not counted
        msb_run("warm")
        skopeo_run("warm")
        msb_bytes.clear()
        sk_bytes.clear()
        msb_dl.clear()
        for i in range(runs):
            order = [("msb", msb_run), ("skopeo", skopeo_run)]
            if i % 2:
                order.reverse()
            got = {}
            for name, fn in order:
                got[name] = fn(i)
            msb_ms.append(got["msb"])
            sk_ms.append(got["skopeo"])
            print(f"run {i + 1}: msb pull {got['msb']:.0f} ms (downloads done at "
                  f"{msb_dl[-1]:.0f}), skopeo copy {got['skopeo']:.0f} ms ({order[0][0]} first)")
            sys.stdout.flush()
        m, s = statistics.median(msb_ms), statistics.median(sk_ms)
        ratio = m / s
        print(f"\npull of {packed / MiB:.0f} MiB ({len(manifest['layers'])} gzip layers) from "
              f"docker-registry on 127.0.0.1, {runs} alternating runs each, host mode {mode}")
        print(f"  {'(ms)':<44} {'median':>8} {'min':>8} {'max':>8} {'MiB/s':>7}")
        print(f"  {'msb pull (blobs + erofs root, fsynced)':<44} {m:8.0f} {min(msb_ms):8.0f} "
              f"{max(msb_ms):8.0f} {packed / MiB / (m / 1000):7.0f}")
        print(f"  {'skopeo copy to an OCI directory':<44} {s:8.0f} {min(sk_ms):8.0f} "
              f"{max(sk_ms):8.0f} {packed / MiB / (s / 1000):7.0f}")
        dl = statistics.median(msb_dl)
        rootfs = statistics.median([t - d for t, d in zip(msb_ms, msb_dl)])
        print(f"  {'  msb: spawn to all layers downloaded':<44} {dl:8.0f}")
        print(f"  {'  msb: then the erofs root finished':<44} {rootfs:8.0f}")
        print(f"  msb / skopeo, medians: {ratio:.2f} (target <= {TARGET:.1f}: "
              f"{'met' if ratio <= TARGET else 'NOT met'})")
        print(f"  on disk: msb store {statistics.median(msb_bytes) / MiB:.0f} MiB (blobs + erofs), "
              f"skopeo {statistics.median(sk_bytes) / MiB:.0f} MiB")

        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        out = ROOT / "bench" / "results" / f"pull-{stamp}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps({
            "bench": "pull", "host_mode": mode, "time": stamp, "runs": runs,
            "image": {"layers": len(manifest["layers"]), "compression": "gzip",
                      "blob_bytes": packed, "unpacked_bytes": unpacked},
            "registry": "docker-registry on 127.0.0.1 (plain HTTP)",
            "measure": "spawn to exit; empty destination each run; sync before each; "
                       "alternating order; one warm-up of each first",
            "msb_pull_ms": stats(msb_ms),
            "msb_cmd": "msb pull REF (MSB_HOME empty; stderr a pipe: one line per step; "
                       "includes writing the erofs root)",
            "msb_phases_ms": {"downloads_done": round(dl, 1), "erofs_root": round(rootfs, 1)},
            "skopeo_copy_ms": stats(sk_ms),
            "skopeo_cmd": "skopeo --insecure-policy copy --quiet --src-tls-verify=false "
                          "docker://REF oci:DIR:latest",
            "skopeo_version": version(["skopeo", "--version"]),
            "disk_bytes": {"msb": statistics.median(msb_bytes),
                           "skopeo": statistics.median(sk_bytes)},
            "msb_over_skopeo": round(ratio, 3), "target_max": TARGET,
        }, indent=2) + "\n")
        print(f"wrote {out.relative_to(ROOT)}")
    finally:
        if reg:
            reg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
