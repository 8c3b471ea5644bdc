"""Credentials stay with the registry: a blob redirected to another origin (blob
storage, a CDN) is fetched without the registry's Authorization, and the pull
still succeeds. The front is a small proxy in this test (Basic auth, redirects
blob GETs); behind it is the real docker-registry."""
import base64
import http.server
import json
import os
import threading
import urllib.request

import pytest

from conftest import msb
from registry import *  # noqa: F401,F403

USER, PASSWORD = "front-user", "front-pw"


class Servers:
    """front: registry API with Basic auth, 307 for blobs; store: serves blobs."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.front_auth = []   # (path, had Authorization)
        self.store_auth = []
        outer = self
        good = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

        def relay(h, url, headers):
            req = urllib.request.Request(url, headers=headers)
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            try:
                r = opener.open(req, timeout=30)
                status, body, hdrs = r.status, r.read(), r.headers
            except urllib.error.HTTPError as e:
                status, body, hdrs = e.code, e.read(), e.headers
            h.send_response(status)
            for k in ("Content-Type", "Docker-Content-Digest"):
                if hdrs.get(k):
                    h.send_header(k, hdrs[k])
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)

        class Front(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                auth = self.headers.get("Authorization")
                outer.front_auth.append((self.path, auth is not None))
                if auth != good:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="front"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if "/blobs/" in self.path:
                    self.send_response(307)
                    self.send_header("Location",
                                     f"http://127.0.0.1:{outer.store.server_port}/s{self.path}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                relay(self, upstream.url + self.path,
                      {"Accept": self.headers.get("Accept", "*/*")})

        class Store(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.store_auth.append((self.path, self.headers.get("Authorization")))
                relay(self, upstream.url + self.path[2:], {})

        self.front = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Front)
        self.store = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Store)
        self.threads = [threading.Thread(target=s.serve_forever, daemon=True)
                        for s in (self.front, self.store)]
        for t in self.threads:
            t.start()

    @property
    def host(self):
        return f"127.0.0.1:{self.front.server_port}"

    def stop(self):
        for s in (self.front, self.store):
            s.shutdown()
            s.server_close()


@pytest.fixture
def servers(registry):
    s = Servers(registry)
    yield s
    s.stop()


def test_redirected_blobs_get_no_credentials(servers, registry, oci_images, env, tmp_path):
    img = busybox_image(oci_images)
    push(registry, img, img.tag, "redirect/busybox")
    env["DOCKER_CONFIG"] = str(tmp_path / "docker")
    ref = f"{servers.host}/redirect/busybox:{img.tag}"

    r = msb(env, "pull", ref)
    assert r.returncode == 1
    assert "msb login" in r.stderr and servers.host in r.stderr, r.stderr

    r = msb(env, "login", "-u", USER, "-p", PASSWORD, servers.host)
    assert r.returncode == 0, r.stderr
    cfg = json.load(open(tmp_path / "docker" / "config.json"))
    assert servers.host in cfg["auths"]
    assert oct(os.stat(tmp_path / "docker" / "config.json").st_mode & 0o777) == "0o600"

    servers.store_auth.clear()
    r = msb(env, "pull", ref)
    assert r.returncode == 0, r.stderr
    # Every blob went through the other origin, and none carried credentials.
    assert servers.store_auth, "no blob was redirected"
    assert all(auth is None for _, auth in servers.store_auth), servers.store_auth
    assert any(had for path, had in servers.front_auth if "/manifests/" in path)

    r = msb(env, "logout", servers.host)
    assert r.returncode == 0, r.stderr
    cfg = json.load(open(tmp_path / "docker" / "config.json"))
    assert servers.host not in cfg.get("auths", {})
