"""Local OCI registries, test images and a connection-cutting proxy for `msb pull` tests.

Nothing here touches the network beyond 127.0.0.1, and everything is stdlib.
Use it from a test module with

    from registry import *  # noqa: F401,F403  (fixtures and helpers, see __all__)

Fixtures
    registry          session: plain docker-registry (no auth, delete enabled)
    auth_registry     session: htpasswd basic auth, .user / .password
    token_registry    session: Docker token auth; .token_server records requests
    oci_images        session: the directory the image builders cache into
    cutting_proxy     function: a CuttingProxy in front of `registry`

Images are OCI layouts written by hand (tarfile + hashlib + json), so uids,
gids and modes are exact whether the tests run as root or not, and digests are
reproducible (fixed mtimes, gzip mtime 0).
"""
import base64
import contextlib
import gzip
import hashlib
import http.server
import io
import json
import os
import pathlib
import re
import select
import shutil
import socket
import ssl
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

__all__ = [
    # fixtures
    "registry", "auth_registry", "token_registry", "oci_images", "cutting_proxy",
    "USER", "PASSWORD", "SERVICE", "ISSUER", "libtrust_key_id",
    # registries and clients
    "Registry", "TokenServer", "start_registry", "RegistryClient",
    "push", "push_raw", "skopeo",
    # images
    "OCIImage", "busybox_image", "layered_image", "config_image", "multiarch_index",
    "hostile_image", "docker_archive", "oci_archive", "HOSTILE_KINDS", "HOSTILE_OUTSIDE",
    "MT_MANIFEST", "MT_INDEX", "MT_CONFIG", "MT_LAYER_TAR", "MT_LAYER_GZIP", "MT_LAYER_ZSTD",
    "MT_DOCKER_MANIFEST", "MT_DOCKER_LIST", "sha256_digest", "tar_bytes", "OCILayout",
    # proxy
    "CuttingProxy",
]

USER = "msbuser"
PASSWORD = "s3cret-pw"
SERVICE = "msb-test-registry"
ISSUER = "msb-test-issuer"

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT_ALL = ", ".join([MT_MANIFEST, MT_INDEX, MT_DOCKER_MANIFEST, MT_DOCKER_LIST])

REGISTRY_BIN = "/usr/bin/docker-registry"
START_TIMEOUT = 15

# urllib must never go through an environment proxy: everything is loopback.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def sha256_digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _http(method, url, data=None, headers=None, timeout=30):
    """One request; returns (status, headers, body) and never raises for HTTP errors."""
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with _OPENER.open(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers, e.read()


# --------------------------------------------------------------------------------------
# failure reports: append registry / token server logs to failing tests that used them
# --------------------------------------------------------------------------------------

_LIVE = []  # Registry objects still running
_FIXTURES = {"registry", "auth_registry", "token_registry", "cutting_proxy"}


class _LogReporter:
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        rep = outcome.get_result()
        if not rep.failed or not (_FIXTURES & set(getattr(item, "fixturenames", ()))):
            return
        used = set(item.fixturenames)
        if "cutting_proxy" in used:
            used.add("registry")
        for reg in list(_LIVE):
            if reg.fixture is not None and reg.fixture not in used:
                continue
            rep.sections.append((f"docker-registry log ({reg.name}, tail)", reg.log_tail()))
            if reg.token_server is not None:
                rep.sections.append((f"token server requests ({reg.name})",
                                     "\n".join(map(str, reg.token_server.requests[-30:]))))


def _install_reporter(config):
    if not config.pluginmanager.has_plugin("msb-registry-logs"):
        config.pluginmanager.register(_LogReporter(), "msb-registry-logs")


# --------------------------------------------------------------------------------------
# token server (Docker registry token authentication spec)
# --------------------------------------------------------------------------------------

def _openssl(*args, data=None):
    r = subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=60)
    if r.returncode:
        raise RuntimeError(f"openssl {' '.join(args)}: {r.stderr.decode(errors='replace')}")
    return r.stdout


def libtrust_key_id(der_public_key):
    """libtrust's key ID: base32(sha256(DER SubjectPublicKeyInfo)[:30]) in 4-char groups."""
    s = base64.b32encode(hashlib.sha256(der_public_key).digest()[:30]).decode().rstrip("=")
    return ":".join(s[i:i + 4] for i in range(0, len(s), 4))


class TokenServer:
    """Issues RS256 JWTs that distribution 2.8's `auth: token` accepts.

    GET /token?service=S&scope=repository:NAME:pull,push[&scope=...][&account=U]
    - no Authorization: pull on repositories under "public/", nothing else;
    - Basic msbuser/s3cret-pw: every requested action, everywhere (and registry:catalog:*);
    - any other Authorization: 401.
    The signing key travels as an x5c chain (default) or as a libtrust `kid`
    (key_mode="kid"); the registry trusts the self-signed cert in `cert_path`.
    Every request is appended to .requests as a dict:
      method, path, query (dict of lists), authorization (bool), user, status, granted.
    Knobs: .expires_in (seconds), .fail_next(status, n=1).
    """

    def __init__(self, workdir, user=USER, password=PASSWORD, service=SERVICE, issuer=ISSUER,
                 key_mode="x5c"):
        self.dir = pathlib.Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.user, self.password, self.service, self.issuer = user, password, service, issuer
        self.key_mode = key_mode
        self.expires_in = 300
        self.requests = []
        self._fail = []
        self._lock = threading.Lock()
        self.key_path = self.dir / "token-signer.key"
        self.cert_path = self.dir / "token-signer.crt"
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "3",
                 "-subj", "/CN=msb-test-token-signer", "-keyout", str(self.key_path),
                 "-out", str(self.cert_path))
        self.cert_der = ssl.PEM_cert_to_DER_cert(self.cert_path.read_text())
        pub_der = _openssl("pkey", "-in", str(self.key_path), "-pubout", "-outform", "DER")
        self.kid = libtrust_key_id(pub_der)

        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                server._handle(self)

            def do_POST(self):
                # OAuth2 form flow is not offered; clients fall back to GET on 404.
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                server._record(self, 404, None, [])
                server._reply(self, 404, {"errors": [{"code": "UNSUPPORTED",
                                                      "message": "use GET"}]})

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.realm = self.url + "/token"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="token-server",
                                        daemon=True)
        self._thread.start()

    # -- public helpers
    def fail_next(self, status, n=1):
        """Answer the next n token requests with this HTTP status."""
        with self._lock:
            self._fail.extend([status] * n)

    def clear(self):
        with self._lock:
            self.requests.clear()

    def sign(self, claims, key_mode=None):
        mode = key_mode or self.key_mode
        header = {"typ": "JWT", "alg": "RS256"}
        if mode == "x5c":
            header["x5c"] = [base64.b64encode(self.cert_der).decode()]
        else:
            header["kid"] = self.kid
        signing_input = (_b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         _b64url(json.dumps(claims, separators=(",", ":")).encode()))
        sig = _openssl("dgst", "-sha256", "-sign", str(self.key_path), data=signing_input.encode())
        return signing_input + "." + _b64url(sig)

    def make_token(self, subject, access, expires_in=None, audience=None, issuer=None):
        now = int(time.time())
        claims = {
            "iss": issuer or self.issuer, "sub": subject, "aud": audience or self.service,
            "exp": now + (self.expires_in if expires_in is None else expires_in),
            "nbf": now - 5, "iat": now, "jti": uuid.uuid4().hex, "access": access,
        }
        return self.sign(claims)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(10)

    # -- request handling
    def _record(self, h, status, user, granted):
        u = urllib.parse.urlsplit(h.path)
        rec = {"method": h.command, "path": u.path, "query": urllib.parse.parse_qs(u.query),
               "authorization": "Authorization" in h.headers, "user": user, "status": status,
               "granted": granted}
        with self._lock:
            self.requests.append(rec)

    @staticmethod
    def _reply(h, status, obj, extra=()):
        body = json.dumps(obj).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def _grant(self, user, scope):
        try:
            typ, rest = scope.split(":", 1)
            name, actions = rest.rsplit(":", 1)
        except ValueError:
            return None
        wanted = [a for a in actions.split(",") if a]
        if user is not None:
            ok = wanted
        elif typ == "repository" and name.startswith("public/"):
            ok = [a for a in wanted if a == "pull"]
        else:
            ok = []
        return {"type": typ.split("(")[0], "name": name, "actions": ok}

    def _handle(self, h):
        u = urllib.parse.urlsplit(h.path)
        q = urllib.parse.parse_qs(u.query)
        with self._lock:
            fail = self._fail.pop(0) if self._fail else None
        if fail is not None:
            self._record(h, fail, None, [])
            return self._reply(h, fail, {"errors": [{"code": "INJECTED", "message": "fail_next"}]})
        if u.path != "/token":
            self._record(h, 404, None, [])
            return self._reply(h, 404, {"errors": [{"code": "NOT_FOUND", "message": u.path}]})
        if q.get("service", [None])[0] != self.service:
            self._record(h, 400, None, [])
            return self._reply(h, 400, {"errors": [{"code": "INVALID_SERVICE",
                                                    "message": f"service must be {self.service}"}]})
        user = None
        authz = h.headers.get("Authorization")
        if authz is not None:
            scheme, _, cred = authz.partition(" ")
            good = False
            if scheme.lower() == "basic":
                try:
                    u_, _, p_ = base64.b64decode(cred.strip()).decode().partition(":")
                    good = (u_, p_) == (self.user, self.password)
                except Exception:
                    good = False
            if not good:
                self._record(h, 401, None, [])
                return self._reply(h, 401, {"errors": [{"code": "UNAUTHORIZED",
                                                        "message": "bad credentials"}]},
                                   [("WWW-Authenticate", 'Basic realm="msb-test-token"')])
            user = self.user
        access = []
        for scope in q.get("scope", []):
            for one in scope.split(" "):  # some clients join scopes with spaces
                g = self._grant(user, one) if one else None
                if g is not None:
                    access.append(g)
        token = self.make_token(user or "", access)
        self._record(h, 200, user, access)
        self._reply(h, 200, {"token": token, "access_token": token, "expires_in": self.expires_in,
                             "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})


# --------------------------------------------------------------------------------------
# registries
# --------------------------------------------------------------------------------------

class Registry:
    """A running `docker-registry serve` on 127.0.0.1. See start_registry()."""

    def __init__(self, name, workdir, auth, user=None, password=None, token_server=None):
        self.name = name
        self.dir = pathlib.Path(workdir)
        self.auth = auth  # None, "htpasswd" or "token"
        self.user, self.password = user, password
        self.token_server = token_server
        self.fixture = None  # the session fixture that owns it, if any
        self.proc = None
        self.port = None
        self.log_path = self.dir / "registry.log"
        self.config_path = self.dir / "config.yml"
        self.storage = self.dir / "storage"

    host = property(lambda self: f"127.0.0.1:{self.port}")
    url = property(lambda self: f"http://127.0.0.1:{self.port}")
    creds = property(lambda self: (self.user, self.password) if self.user else None)

    @property
    def requests(self):
        """The token server's request log (token registries only)."""
        return self.token_server.requests if self.token_server else []

    def _config(self):
        cfg = {
            "version": "0.1",
            "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
            "storage": {"filesystem": {"rootdirectory": str(self.storage)},
                        "delete": {"enabled": True},
                        "maintenance": {"uploadpurging": {"enabled": False}}},
            "http": {"addr": self.host, "secret": "msb-test-" + uuid.uuid4().hex,
                     "headers": {"X-Content-Type-Options": ["nosniff"]}},
        }
        if self.auth == "htpasswd":
            cfg["auth"] = {"htpasswd": {"realm": "msb-test", "path": str(self.dir / "htpasswd")}}
        elif self.auth == "token":
            ts = self.token_server
            cfg["auth"] = {"token": {"realm": ts.realm, "service": ts.service, "issuer": ts.issuer,
                                     "rootcertbundle": str(ts.cert_path)}}
        return cfg

    def start(self):
        self.storage.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        last = ""
        for _attempt in range(5):
            self.port = _free_port()
            # JSON is YAML; distribution parses it with yaml.v2.
            self.config_path.write_text(json.dumps(self._config(), indent=1) + "\n")
            logf = open(self.log_path, "ab")
            try:
                self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(self.config_path)],
                                             stdin=subprocess.DEVNULL, stdout=logf,
                                             stderr=subprocess.STDOUT, env=env,
                                             start_new_session=True)
            finally:
                logf.close()
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    st, _, _ = _http("GET", self.url + "/v2/", timeout=2)
                    if st in (200, 401):
                        _LIVE.append(self)
                        return self
                except OSError:
                    pass
                time.sleep(0.03)
            last = self.log_tail()
            self.stop()
            if "address already in use" not in last:
                break
        raise RuntimeError(f"docker-registry {self.name} did not start; log:\n{last}")

    def stop(self):
        if self in _LIVE:
            _LIVE.remove(self)
        p, self.proc = self.proc, None
        if p is None:
            return
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines=60):
        return "\n".join(self.log_text().splitlines()[-lines:])

    def client(self, creds=None):
        return RegistryClient(self, creds=creds)

    def __repr__(self):
        return f"<Registry {self.name} {self.host} auth={self.auth}>"


def start_registry(workdir, auth=None, name=None, token_key_mode="x5c",
                   user=USER, password=PASSWORD):
    """Start a registry in workdir. auth: None, "htpasswd" or "token". Caller stops it
    (reg.stop(); for token registries also reg.token_server.stop())."""
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ts = None
    if auth == "htpasswd":
        r = subprocess.run(["htpasswd", "-Bbn", user, password], capture_output=True, text=True,
                           check=True)
        (workdir / "htpasswd").write_text(r.stdout)
    elif auth == "token":
        ts = TokenServer(workdir / "token", user=user, password=password, key_mode=token_key_mode)
    elif auth is not None:
        raise ValueError(auth)
    reg = Registry(name or auth or "plain", workdir, auth,
                   user if auth else None, password if auth else None, ts)
    try:
        return reg.start()
    except BaseException:
        if ts:
            ts.stop()
        raise


@contextlib.contextmanager
def _running(tmp_path_factory, request, auth, name):
    _install_reporter(request.config)
    reg = start_registry(tmp_path_factory.mktemp(name), auth=auth, name=name)
    reg.fixture = request.fixturename
    try:
        yield reg
    finally:
        reg.stop()
        if reg.token_server:
            reg.token_server.stop()


@pytest.fixture(scope="session")
def registry(tmp_path_factory, request):
    """Plain registry: .host "127.0.0.1:PORT", .url, .stop(), .log_path, .client()."""
    with _running(tmp_path_factory, request, None, "registry") as reg:
        yield reg


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory, request):
    """htpasswd registry: also .user "msbuser", .password "s3cret-pw", .creds."""
    with _running(tmp_path_factory, request, "htpasswd", "auth-registry") as reg:
        yield reg


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory, request):
    """Token-auth registry: .token_server (TokenServer), .requests, .user, .password."""
    with _running(tmp_path_factory, request, "token", "token-registry") as reg:
        yield reg


# --------------------------------------------------------------------------------------
# a small registry client (urllib), used by push_raw and by tests to look at things
# --------------------------------------------------------------------------------------

def _parse_challenge(value):
    scheme, _, rest = value.partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


class RegistryClient:
    """urllib client that answers Basic and Bearer challenges with `creds`
    (default: the registry's own credentials; pass creds=False for anonymous)."""

    def __init__(self, registry, creds=None):
        self.registry = registry
        self.base = registry if isinstance(registry, str) else registry.url
        if not self.base.startswith("http"):
            self.base = "http://" + self.base
        if creds is None:
            creds = getattr(registry, "creds", None)
        self.creds = creds or None
        self._tokens = {}

    def _basic(self):
        u, p = self.creds
        return "Basic " + base64.b64encode(f"{u}:{p}".encode()).decode()

    def _token(self, params):
        q = {"service": params.get("service", "")}
        url = params["realm"] + "?" + urllib.parse.urlencode(q)
        if params.get("scope"):
            url += "&" + urllib.parse.urlencode({"scope": params["scope"]})
        key = url
        if key in self._tokens:
            return self._tokens[key]
        h = {"Authorization": self._basic()} if self.creds else {}
        st, _, body = _http("GET", url, headers=h)
        if st != 200:
            raise RuntimeError(f"token request {url} -> {st}: {body[:300]!r}")
        tok = json.loads(body).get("token")
        self._tokens[key] = tok
        return tok

    def request(self, method, path, data=None, headers=None):
        url = path if path.startswith("http") else self.base + path
        headers = dict(headers or {})
        st, rh, body = _http(method, url, data, headers)
        if st == 401 and "WWW-Authenticate" in rh:
            scheme, params = _parse_challenge(rh["WWW-Authenticate"])
            if scheme == "basic" and self.creds:
                headers["Authorization"] = self._basic()
            elif scheme == "bearer":
                headers["Authorization"] = "Bearer " + self._token(params)
            else:
                return st, rh, body
            st, rh, body = _http(method, url, data, headers)
        return st, rh, body

    def _check(self, what, res, *ok):
        st, rh, body = res
        if st not in ok:
            log = self.registry.log_tail(20) if hasattr(self.registry, "log_tail") else ""
            raise RuntimeError(f"{what} -> HTTP {st}: {body[:500]!r}\n{log}")
        return res

    def get_manifest(self, name, ref, accept=ACCEPT_ALL):
        st, rh, body = self._check(f"GET manifest {name}:{ref}", self.request(
            "GET", f"/v2/{name}/manifests/{ref}", headers={"Accept": accept}), 200)
        return body, rh.get("Content-Type"), rh.get("Docker-Content-Digest")

    def get_blob(self, name, digest):
        return self._check(f"GET blob {digest}", self.request(
            "GET", f"/v2/{name}/blobs/{digest}"), 200)[2]

    def tags(self, name):
        return json.loads(self._check("tags", self.request("GET", f"/v2/{name}/tags/list"), 200)[2])

    def upload_blob(self, name, data):
        digest = sha256_digest(data)
        st, _, _ = self.request("HEAD", f"/v2/{name}/blobs/{digest}")
        if st == 200:
            return digest
        _, rh, _ = self._check("POST upload", self.request(
            "POST", f"/v2/{name}/blobs/uploads/", b"", {"Content-Length": "0"}), 202)
        loc = urllib.parse.urljoin(self.base + "/", rh["Location"])
        loc += ("&" if "?" in loc else "?") + urllib.parse.urlencode({"digest": digest})
        self._check("PUT upload", self.request("PUT", loc, data, {
            "Content-Type": "application/octet-stream", "Content-Length": str(len(data))}), 201)
        return digest

    def put_manifest(self, name, ref, body, media_type):
        _, rh, _ = self._check(f"PUT manifest {name}:{ref}", self.request(
            "PUT", f"/v2/{name}/manifests/{ref}", body, {"Content-Type": media_type}), 201)
        return rh.get("Docker-Content-Digest")

    def delete_manifest(self, name, digest):
        return self.request("DELETE", f"/v2/{name}/manifests/{digest}")[0]


def push_raw(registry, name, tag, manifest_bytes, media_type, blobs, creds=None):
    """Upload blobs (bytes, iterable of bytes, or {digest: bytes}) with POST+PUT, then PUT
    the manifest as-is under tag. Returns the manifest digest the registry reports."""
    c = RegistryClient(registry, creds=creds)
    if isinstance(blobs, (bytes, bytearray)):
        blobs = [blobs]
    elif isinstance(blobs, dict):
        blobs = list(blobs.values())
    for b in blobs:
        c.upload_blob(name, bytes(b))
    if isinstance(manifest_bytes, (dict, list)):
        manifest_bytes = json.dumps(manifest_bytes).encode()
    return c.put_manifest(name, tag, manifest_bytes, media_type)


# --------------------------------------------------------------------------------------
# skopeo
# --------------------------------------------------------------------------------------

def _skopeo_env(workdir=None):
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    home = env.get("HOME")
    if not home or not os.access(home, os.W_OK):
        base = pathlib.Path(workdir or "/tmp") / ".skopeo-home"
        base.mkdir(parents=True, exist_ok=True)
        env["HOME"] = str(base)
    if workdir:
        env["TMPDIR"] = str(workdir)
    return env


def skopeo(*args, workdir=None, timeout=120, check=True):
    """Run `skopeo --insecure-policy ARGS`; returns CompletedProcess (text)."""
    r = subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True, text=True,
                       env=_skopeo_env(workdir), timeout=timeout)
    if check and r.returncode:
        raise RuntimeError(f"skopeo {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
    return r


def _creds_arg(registry, creds):
    if creds is False:
        return None
    if creds is None:
        creds = getattr(registry, "creds", None)
    return f"{creds[0]}:{creds[1]}" if creds else None


def push(registry, layout_dir, tag, name, creds=None, dest_tag=None):
    """skopeo copy --all --preserve-digests oci:LAYOUT:TAG docker://HOST/NAME:TAG.
    layout_dir may be an OCIImage. creds None = the registry's own (if any), False = none,
    or (user, password). Returns the pushed reference "HOST/NAME:TAG"."""
    if isinstance(layout_dir, OCIImage):
        layout_dir = layout_dir.layout
    host = registry if isinstance(registry, str) else registry.host
    ref = f"{host}/{name}:{dest_tag or tag}"
    args = ["copy", "--quiet", "--all", "--preserve-digests", "--dest-tls-verify=false"]
    c = _creds_arg(registry, creds)
    if c:
        args += ["--dest-creds", c]
    skopeo(*args, f"oci:{layout_dir}:{tag}", f"docker://{ref}",
           workdir=pathlib.Path(layout_dir).parent)
    return ref


# --------------------------------------------------------------------------------------
# OCI layouts written by hand
# --------------------------------------------------------------------------------------

MTIME = 1700000000


def _ti(name, type_, mode, uid=0, gid=0, **kw):
    t = tarfile.TarInfo(name)
    t.type, t.mode, t.uid, t.gid, t.mtime = type_, mode, uid, gid, MTIME
    t.uname = t.gname = ""
    for k, v in kw.items():
        setattr(t, k, v)
    return t


def F(path, data, mode=0o644, uid=0, gid=0):
    data = data.encode() if isinstance(data, str) else data
    return _ti(path, tarfile.REGTYPE, mode, uid, gid, size=len(data)), data


def D(path, mode=0o755, uid=0, gid=0):
    return _ti(path.rstrip("/") + "/", tarfile.DIRTYPE, mode, uid, gid), None


def S(path, target, uid=0, gid=0):
    return _ti(path, tarfile.SYMTYPE, 0o777, uid, gid, linkname=target), None


def H(path, target, mode=0o644, uid=0, gid=0):
    return _ti(path, tarfile.LNKTYPE, mode, uid, gid, linkname=target), None


def DEV(path, kind, major, minor, mode=0o666):
    t = tarfile.CHRTYPE if kind == "c" else tarfile.BLKTYPE if kind == "b" else tarfile.FIFOTYPE
    return _ti(path, t, mode, devmajor=major, devminor=minor), None


def tar_bytes(members, format=tarfile.PAX_FORMAT):
    """members: (TarInfo, data-or-None) pairs, written verbatim (names are not sanitized)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=format) as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _compress(raw, kind):
    if kind == "gzip":
        return gzip.compress(raw, compresslevel=6, mtime=0), MT_LAYER_GZIP
    if kind == "zstd":
        r = subprocess.run(["zstd", "-q", "-c", "-3"], input=raw, capture_output=True, check=True)
        return r.stdout, MT_LAYER_ZSTD
    if kind in (None, "tar", "none"):
        return raw, MT_LAYER_TAR
    raise ValueError(kind)


class OCILayout:
    """Writes blobs/sha256/*, oci-layout and index.json."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        (self.path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        self.refs = []
        self.blobs = {}

    def blob(self, data, media_type):
        d = sha256_digest(data)
        (self.path / "blobs" / "sha256" / d.split(":")[1]).write_bytes(data)
        self.blobs[d] = data
        return {"mediaType": media_type, "digest": d, "size": len(data)}

    def layer(self, members_or_raw, compression="gzip"):
        raw = members_or_raw if isinstance(members_or_raw, bytes) else tar_bytes(members_or_raw)
        blob, mt = _compress(raw, compression)
        desc = self.blob(blob, mt)
        return desc, sha256_digest(raw)

    def image(self, layers, config_extra=None, arch="amd64", variant=None, history=None):
        """layers: list of (descriptor, diff_id). Returns (manifest descriptor, manifest, config)."""
        config = {
            "created": "2023-11-14T22:13:20Z", "architecture": arch, "os": "linux",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
            "history": history or [{"created": "2023-11-14T22:13:20Z",
                                    "created_by": f"msb tests: layer {i}"}
                                   for i in range(len(layers))],
        }
        if variant:
            config["variant"] = variant
        if config_extra:
            config["config"] = config_extra
        cdesc = self.blob(json.dumps(config, indent=1).encode(), MT_CONFIG)
        manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": cdesc,
                    "layers": [d for d, _ in layers]}
        mdesc = self.blob(json.dumps(manifest, indent=1).encode(), MT_MANIFEST)
        return mdesc, manifest, config

    def tag(self, desc, tag, platform=None):
        d = dict(desc, annotations={"org.opencontainers.image.ref.name": tag})
        if platform:
            d["platform"] = platform
        self.refs.append(d)
        (self.path / "index.json").write_text(json.dumps(
            {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": self.refs}, indent=1))


class OCIImage:
    """A built layout. Unpacks as (layout, tag). Attributes:
    layout, tag, digest (of what the tag points at: manifest or index), media_type,
    manifest (dict), config (dict), layers (descriptors), blobs ({digest: bytes}),
    manifest_bytes, expected (path -> dict), absent (paths), notes (dict)."""

    def __init__(self, layout, tag, desc, blobs, manifest=None, config=None,
                 expected=None, absent=(), notes=None):
        self.layout, self.tag = pathlib.Path(layout), tag
        self.digest, self.media_type = desc["digest"], desc["mediaType"]
        self.manifest_digest = self.digest
        self.blobs = dict(blobs)
        self.manifest_bytes = self.blobs[self.digest]
        self.manifest = manifest if manifest is not None else json.loads(self.manifest_bytes)
        self.config = config
        self.layers = self.manifest.get("layers", [])
        self.expected = expected or {}
        self.absent = list(absent)
        self.notes = notes or {}

    def __iter__(self):
        return iter((self.layout, self.tag))

    def blob(self, digest):
        return self.blobs[digest]

    def push_raw(self, registry, name, tag=None, creds=None):
        """Push blobs and the manifest via urllib (no skopeo, no checks)."""
        blobs = {d: b for d, b in self.blobs.items() if d != self.digest}
        return push_raw(registry, name, tag or self.tag, self.manifest_bytes, self.media_type,
                        blobs, creds=creds)

    def __repr__(self):
        return f"<OCIImage {self.layout}:{self.tag} {self.digest[:19]}>"


_CACHE = {}
_CACHE_LOCK = threading.Lock()


def _cached(tmp, name, build):
    path = pathlib.Path(tmp) / name
    key = str(path.resolve())
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        if path.exists():
            shutil.rmtree(path)
        img = build(path)
        _CACHE[key] = img
        return img


BUSYBOX = "/bin/busybox"
APPLETS = """sh ash echo cat ls id stat env pwd true false sleep head tail wc uname hostname
readlink mkdir rmdir rm cp mv ln touch chmod chown grep sed test [ printf whoami sha256sum
md5sum find xargs tr cut sort uniq date dd mount umount ps kill df du realpath basename
dirname tee seq sync tar gzip gunzip zcat awk expr which mktemp nproc timeout od hexdump
diff cmp ip ifconfig ping wget nc free dmesg touch truncate yes""".split()
PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "app:x:1000:1000::/home/app:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = "root:x:0:\napp:x:1000:\nnobody:x:65534:\n"

_BASE = {}


def _busybox_members():
    bb = pathlib.Path(BUSYBOX).read_bytes()
    m = [D("bin"), F("bin/busybox", bb, 0o755), D("dev"), D("etc"),
         F("etc/passwd", PASSWD), F("etc/group", GROUP),
         F("etc/hosts", "127.0.0.1 localhost\n"), D("home"), D("home/app", 0o755, 1000, 1000),
         D("proc", 0o555), D("root", 0o700), D("sys", 0o555), D("tmp", 0o1777),
         D("usr"), D("usr/bin"), S("usr/bin/env", "../../bin/env"), D("var"),
         D("var/tmp", 0o1777)]
    seen = set()
    for a in APPLETS:
        if a not in seen:
            seen.add(a)
            m.append(S("bin/" + a, "busybox"))
    return m


def _base_layer(layout):
    """The busybox layer (gzip), compressed once per process and written into layout."""
    if "raw" not in _BASE:
        raw = tar_bytes(_busybox_members())
        _BASE["raw"] = raw
        _BASE["gz"] = gzip.compress(raw, compresslevel=6, mtime=0)
    desc = layout.blob(_BASE["gz"], MT_LAYER_GZIP)
    return desc, sha256_digest(_BASE["raw"])


def _base_expected():
    return {
        "bin/busybox": {"type": "file", "mode": 0o755, "uid": 0, "gid": 0},
        "bin/sh": {"type": "symlink", "target": "busybox"},
        "etc/passwd": {"type": "file", "content": PASSWD.encode()},
        "tmp": {"type": "dir", "mode": 0o1777},
        "home/app": {"type": "dir", "mode": 0o755, "uid": 1000, "gid": 1000},
    }


def _finish(layout, tag, mdesc, manifest, config, **kw):
    layout.tag(mdesc, tag)
    return OCIImage(layout.path, tag, mdesc, layout.blobs, manifest, config, **kw)


def busybox_image(tmp, tag="latest"):
    """One gzip layer: static busybox + applet symlinks, passwd/group (root, app 1000,
    nobody), /tmp 1777, /home/app 1000:1000. Config: Env PATH=/bin, Cmd ["/bin/sh"]."""
    def build(path):
        lay = OCILayout(path)
        mdesc, man, cfg = lay.image([_base_layer(lay)])
        return _finish(lay, tag, mdesc, man, cfg, expected=_base_expected())
    return _cached(tmp, f"busybox-{tag}", build)


LONG_PATH = "deep/" + "/".join(["d%02d-abcdefghijklmnop" % i for i in range(8)]) + "/long-file.txt"


def layered_image(tmp, tag="latest"):
    """busybox layer (gzip) + L1 gzip + L2 zstd + L3 uncompressed tar. See .expected/.absent:
    L1: data/{keep.txt,file,overridden=v1}, dir/{old1,sub/old2}, a >100-char path (PAX),
    L2: data/.wh.file, dir/.wh..wh..opq + dir/new, opt/hardlink-target + hard link
        opt/hardlink, symlinks opt/symlink -> hardlink-target, opt/abs-link -> /etc/passwd,
    L3: data/overridden=v3, data/added, opt/suid 04755 1234:5678, opt/private 0700 1234:5678.
    """
    def build(path):
        lay = OCILayout(path)
        l1 = [D("data"), F("data/keep.txt", "keep\n"), F("data/file", "to be deleted\n"),
              F("data/overridden", "v1\n"), D("dir"), F("dir/old1", "old1\n"), D("dir/sub"),
              F("dir/sub/old2", "old2\n")]
        parts = LONG_PATH.split("/")
        for i in range(1, len(parts)):
            l1.append(D("/".join(parts[:i])))
        l1.append(F(LONG_PATH, "long path\n"))
        l2 = [D("data"), F("data/.wh.file", b""), D("dir"), F("dir/.wh..wh..opq", b""),
              F("dir/new", "new\n"), D("opt"), F("opt/hardlink-target", "linked content\n"),
              H("opt/hardlink", "opt/hardlink-target"), S("opt/symlink", "hardlink-target"),
              S("opt/abs-link", "/etc/passwd")]
        suid = "#!/bin/sh\necho suid\n"
        l3 = [D("data"), F("data/overridden", "v3\n"), F("data/added", "added in layer 3\n"),
              D("opt"), F("opt/suid", suid, 0o4755, 1234, 5678),
              D("opt/private", 0o700, 1234, 5678),
              F("opt/private/secret", "secret\n", 0o600, 1234, 5678)]
        layers = [_base_layer(lay), lay.layer(l1, "gzip"), lay.layer(l2, "zstd"),
                  lay.layer(l3, None)]
        mdesc, man, cfg = lay.image(layers)
        exp = _base_expected()
        exp.update({
            "data/keep.txt": {"type": "file", "content": b"keep\n"},
            "data/overridden": {"type": "file", "content": b"v3\n"},
            "data/added": {"type": "file", "content": b"added in layer 3\n"},
            "dir": {"type": "dir"},
            "dir/new": {"type": "file", "content": b"new\n"},
            "opt/hardlink-target": {"type": "file", "content": b"linked content\n",
                                    "same_inode_as": "opt/hardlink"},
            "opt/hardlink": {"type": "file", "content": b"linked content\n", "nlink": 2},
            "opt/symlink": {"type": "symlink", "target": "hardlink-target"},
            "opt/abs-link": {"type": "symlink", "target": "/etc/passwd"},
            "opt/suid": {"type": "file", "content": suid.encode(), "mode": 0o4755,
                         "uid": 1234, "gid": 5678},
            "opt/private": {"type": "dir", "mode": 0o700, "uid": 1234, "gid": 5678},
            "opt/private/secret": {"type": "file", "mode": 0o600, "uid": 1234, "gid": 5678},
            LONG_PATH: {"type": "file", "content": b"long path\n"},
        })
        absent = ["data/file", "data/.wh.file", "dir/old1", "dir/sub", "dir/sub/old2",
                  "dir/.wh..wh..opq"]
        return _finish(lay, tag, mdesc, man, cfg, expected=exp, absent=absent)
    return _cached(tmp, f"layered-{tag}", build)


CONFIG_CMD = "echo $GREETING from $(pwd) as $(id -u)"


def config_image(tmp, tag="latest"):
    """busybox + a layer with /home/app/work (1000:1000). Config: User app,
    WorkingDir /home/app/work, Env GREETING=hi PATH=/bin, Entrypoint sh -c, Cmd CONFIG_CMD.
    Running it should print "hi from /home/app/work as 1000"."""
    def build(path):
        lay = OCILayout(path)
        layer = lay.layer([D("home"), D("home/app", 0o755, 1000, 1000),
                           D("home/app/work", 0o755, 1000, 1000),
                           F("home/app/work/hello.txt", "hello from work\n", 0o644, 1000, 1000)])
        cfg = {"User": "app", "WorkingDir": "/home/app/work", "Env": ["GREETING=hi", "PATH=/bin"],
               "Entrypoint": ["/bin/sh", "-c"], "Cmd": [CONFIG_CMD]}
        mdesc, man, config = lay.image([_base_layer(lay), layer], config_extra=cfg)
        exp = _base_expected()
        exp["home/app/work"] = {"type": "dir", "uid": 1000, "gid": 1000, "mode": 0o755}
        return _finish(lay, tag, mdesc, man, config, expected=exp,
                       notes={"output": "hi from /home/app/work as 1000"})
    return _cached(tmp, f"config-{tag}", build)


def multiarch_index(tmp, tag="latest"):
    """OCI index listing, in this order: linux/arm64/v8 (a layer whose /arch says "arm64",
    no busybox), linux/amd64 (busybox + /arch "amd64"), and an unknown/unknown attestation
    manifest like buildx writes. .notes has amd64/arm64/attestation manifest digests."""
    def build(path):
        lay = OCILayout(path)
        arm_layer = lay.layer([F("arch", "arm64\n")])
        arm, _, _ = lay.image([arm_layer], arch="arm64", variant="v8")
        amd_layer = lay.layer([F("arch", "amd64\n")])
        amd, amd_man, amd_cfg = lay.image([_base_layer(lay), amd_layer])
        att_layer = lay.blob(b'{"_type":"https://in-toto.io/Statement/v0.1"}',
                             "application/vnd.in-toto+json")
        att_cfg = lay.blob(b"{}", MT_CONFIG)
        att_man = {"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": att_cfg,
                   "layers": [att_layer]}
        att = lay.blob(json.dumps(att_man, indent=1).encode(), MT_MANIFEST)
        index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [
            dict(arm, platform={"architecture": "arm64", "os": "linux", "variant": "v8"}),
            dict(amd, platform={"architecture": "amd64", "os": "linux"}),
            dict(att, platform={"architecture": "unknown", "os": "unknown"},
                 annotations={"vnd.docker.reference.type": "attestation-manifest",
                              "vnd.docker.reference.digest": amd["digest"]}),
        ]}
        idesc = lay.blob(json.dumps(index, indent=1).encode(), MT_INDEX)
        lay.tag(idesc, tag)
        exp = _base_expected()
        exp["arch"] = {"type": "file", "content": b"amd64\n"}
        return OCIImage(lay.path, tag, idesc, lay.blobs, index, amd_cfg, expected=exp,
                        notes={"amd64": amd["digest"], "arm64": arm["digest"],
                               "attestation": att["digest"], "amd64_manifest": amd_man})
    return _cached(tmp, f"multiarch-{tag}", build)


HOSTILE_OUTSIDE = "/tmp/msb-hostile-outside"
HOSTILE_KINDS = ("dotdot", "absolute", "symlink_escape", "hardlink_escape", "device")


def _hostile_layer(kind):
    if kind == "dotdot":
        return [F("../../escape", "escaped via ..\n"), F("ok/../../../escape2", "escaped 2\n")]
    if kind == "absolute":
        return [D("/abs"), F("/abs/path", "absolute member\n")]
    if kind == "symlink_escape":
        return [S("link", HOSTILE_OUTSIDE), F("link/pwned", "pwned through a symlink\n"),
                S("rlink", "../../../../../../.." + HOSTILE_OUTSIDE + "-rel"),
                F("rlink/pwned", "pwned through a relative symlink\n")]
    if kind == "hardlink_escape":
        return [H("passwd-link", "../../etc/passwd")]
    if kind == "device":
        return [DEV("evil-null", "c", 1, 3), DEV("evil-disk", "b", 8, 0, 0o660)]
    raise ValueError(kind)


def hostile_image(tmp, kind="all", tag="latest"):
    """busybox layer + hostile gzip layer(s), tar members written verbatim:
    dotdot: ../../escape; absolute: /abs/path; symlink_escape: link -> HOSTILE_OUTSIDE then
    link/pwned (and rlink -> ../../..HOSTILE_OUTSIDE-rel, rlink/pwned); hardlink_escape:
    passwd-link => ../../etc/passwd; device: char 1:3 evil-null,
    block 8:0 evil-disk. kind="all" has one layer per kind, in HOSTILE_KINDS order.
    Push with skopeo (push) or img.push_raw(registry, name)."""
    kinds = HOSTILE_KINDS if kind == "all" else (kind,)

    def build(path):
        lay = OCILayout(path)
        layers = [_base_layer(lay)] + [lay.layer(_hostile_layer(k), "gzip") for k in kinds]
        mdesc, man, cfg = lay.image(layers)
        return _finish(lay, tag, mdesc, man, cfg, notes={"kinds": list(kinds),
                                                          "outside": HOSTILE_OUTSIDE})
    return _cached(tmp, f"hostile-{kind}-{tag}", build)


def _archive(tmp, image, kind, suffix, name, *flags):
    """skopeo copy oci:LAYOUT:TAG KIND:FILE:NAME, once per file (image defaults to busybox)."""
    image = image or busybox_image(tmp)
    out = pathlib.Path(tmp) / f"{image.layout.name}.{suffix}.tar"
    key = (kind, str(out))
    with _CACHE_LOCK:
        if key not in _CACHE:
            out.unlink(missing_ok=True)
            skopeo("copy", "--quiet", *flags, f"oci:{image.layout}:{image.tag}",
                   f"{kind}:{out}:{name}", workdir=tmp)
            _CACHE[key] = out
    return _CACHE[key]


def docker_archive(tmp, image=None, ref="msb-test/busybox:latest"):
    """A docker-archive of @image (busybox by default) naming it @ref."""
    return _archive(tmp, image, "docker-archive", "docker", ref)


def oci_archive(tmp, image=None, tag="latest"):
    """An oci-archive of @image (busybox by default) tagged @tag, digests kept."""
    return _archive(tmp, image, "oci-archive", "oci", tag, "--preserve-digests")


@pytest.fixture(scope="session")
def oci_images(tmp_path_factory):
    """Directory the image builders cache into: busybox_image(oci_images) etc."""
    return tmp_path_factory.mktemp("oci-images")


# --------------------------------------------------------------------------------------
# cutting proxy
# --------------------------------------------------------------------------------------

_BLOB_RE = re.compile(r"^/v2/(.+)/blobs/(sha256:[0-9a-f]{64})$")


class _Closed(Exception):
    pass


def _read_head(f):
    lines = []
    while True:
        line = f.readline(65537)
        if not line:
            if lines:
                raise _Closed("EOF inside a header")
            return None
        if not lines and line in (b"\r\n", b"\n"):
            continue  # tolerate stray CRLF between requests
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            return b"".join(lines)


def _parse_head(head):
    lines = head.decode("latin-1").split("\r\n")
    first = lines[0].split(" ", 2)
    hdrs = {}
    for ln in lines[1:]:
        if ":" in ln:
            k, v = ln.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
    return first, hdrs


def _read_chunked(f):
    out = []
    while True:
        line = f.readline(65537)
        if not line:
            raise _Closed("EOF in chunked body")
        out.append(line)
        n = int(line.split(b";")[0].strip() or b"0", 16)
        if n == 0:
            while True:  # trailers
                t = f.readline(65537)
                if not t:
                    raise _Closed("EOF in trailers")
                out.append(t)
                if t in (b"\r\n", b"\n"):
                    return b"".join(out)
        out.append(_read_exact(f, n + 2))


def _read_exact(f, n):
    data = f.read(n)
    if data is None or len(data) < n:
        raise _Closed("short body")
    return data


class CuttingProxy:
    """HTTP/1.1 proxy on 127.0.0.1 in front of upstream "HOST:PORT".

    proxy.cut(digest, nbytes, times=1): the next `times` GETs of .../blobs/DIGEST get the
    upstream status line and headers, then `nbytes` of body, then the connection closes.
    Everything else passes through (keep-alive preserved). .requests holds one dict per
    request: method, path, range (Range header or None), status, cut (bool), sent (body bytes
    for cut responses). Helpers: .blob_gets(digest), .ranges(digest), .count(...).
    """

    def __init__(self, upstream, timeout=60):
        self.upstream = upstream if isinstance(upstream, str) else upstream.host
        uh, up = self.upstream.rsplit(":", 1)
        self._up_addr = (uh, int(up))
        self.timeout = timeout
        self.requests = []
        self.tls_attempts = 0
        self._cuts = {}
        self._lock = threading.Lock()
        self._socks = set()
        self._threads = []
        self._stopping = False
        self._lsock = socket.socket()
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind(("127.0.0.1", 0))
        self._lsock.listen(64)
        self.port = self._lsock.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.url = "http://" + self.host
        self._acceptor = threading.Thread(target=self._accept, name="cutting-proxy", daemon=True)
        self._acceptor.start()

    def cut(self, digest, nbytes, times=1):
        with self._lock:
            self._cuts[digest] = [nbytes, times]

    def blob_gets(self, digest):
        return [r for r in self.requests if r["method"] == "GET" and r.get("digest") == digest]

    def ranges(self, digest):
        return [r["range"] for r in self.blob_gets(digest)]

    def count(self, method=None, path_contains=""):
        return sum(1 for r in self.requests
                   if (method is None or r["method"] == method) and path_contains in r["path"])

    def clear(self):
        with self._lock:
            self.requests.clear()

    def stop(self):
        self._stopping = True
        with contextlib.suppress(OSError):
            self._lsock.shutdown(socket.SHUT_RDWR)  # wakes the acceptor's select()
        with contextlib.suppress(OSError):
            self._lsock.close()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()
        self._acceptor.join(10)
        for t in list(self._threads):
            t.join(10)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.stop()

    def _accept(self):
        while not self._stopping:
            try:
                r, _, _ = select.select([self._lsock], [], [], 0.2)
                if not r:
                    continue
                c, _ = self._lsock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._conn, args=(c,), daemon=True)
            with self._lock:
                self._threads = [x for x in self._threads if x.is_alive()] + [t]
            t.start()

    def _track(self, s):
        with self._lock:
            self._socks.add(s)

    def _conn(self, csock):
        up = None
        self._track(csock)
        try:
            csock.settimeout(self.timeout)
            first = csock.recv(1, socket.MSG_PEEK)
            if first == b"\x16":
                # A TLS ClientHello (clients that try https first): answer like Go's
                # net/http does so they fall back to plain http at once.
                with self._lock:
                    self.tls_attempts += 1
                csock.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n"
                              b"Client sent an HTTP request to an HTTPS server.\n")
                return
            cf = csock.makefile("rb")
            while not self._stopping:
                head = _read_head(cf)
                if head is None:
                    return
                (method, target, *_), h = _parse_head(head)
                body = b""
                if "chunked" in h.get("transfer-encoding", "").lower():
                    body = _read_chunked(cf)
                elif h.get("content-length"):
                    body = _read_exact(cf, int(h["content-length"]))
                if h.get("expect", "").lower() == "100-continue":
                    # we already have the body: drop Expect towards upstream
                    head = re.sub(rb"(?im)^expect:[^\r\n]*\r\n", b"", head)
                if up is None:
                    up = socket.create_connection(self._up_addr, timeout=self.timeout)
                    self._track(up)
                    uf = up.makefile("rb")
                up.sendall(head + body)
                while True:
                    rhead = _read_head(uf)
                    if rhead is None:
                        return
                    (_, status, *_), rh = _parse_head(rhead)
                    status = int(status)
                    if not 100 <= status < 200:
                        break
                    csock.sendall(rhead)
                path = urllib.parse.urlsplit(target).path
                m = _BLOB_RE.match(path)
                rec = {"method": method, "path": path, "range": h.get("range"), "status": status,
                       "digest": m.group(2) if m else None, "cut": False, "sent": None,
                       "authorization": "authorization" in h}
                cut = None
                with self._lock:
                    self.requests.append(rec)
                    if m and method == "GET" and m.group(2) in self._cuts and status in (200, 206):
                        c = self._cuts[m.group(2)]
                        if c[1] > 0:
                            c[1] -= 1
                            cut = c[0]
                if cut is not None:
                    rec["cut"] = True
                    csock.sendall(rhead)
                    n = min(cut, int(rh.get("content-length", cut)))
                    data = uf.read(n) if n else b""
                    csock.sendall(data)
                    rec["sent"] = len(data)
                    return
                if method == "HEAD" or status in (204, 304):
                    csock.sendall(rhead)
                elif "chunked" in rh.get("transfer-encoding", "").lower():
                    csock.sendall(rhead + _read_chunked(uf))
                elif "content-length" in rh:
                    csock.sendall(rhead)
                    left = int(rh["content-length"])
                    while left:
                        data = uf.read1(min(left, 1 << 16))
                        if not data:
                            raise _Closed("upstream closed mid-body")
                        csock.sendall(data)
                        left -= len(data)
                else:
                    csock.sendall(rhead)
                    while True:
                        data = uf.read1(1 << 16)
                        if not data:
                            return
                        csock.sendall(data)
                if "close" in (h.get("connection", "").lower(), rh.get("connection", "").lower()):
                    return
        except (OSError, _Closed, ValueError):
            return
        finally:
            for s in (csock, up):
                if s is not None:
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)
                    with contextlib.suppress(OSError):
                        s.close()
                    with self._lock:
                        self._socks.discard(s)


@pytest.fixture
def cutting_proxy(registry):
    """A CuttingProxy in front of the session `registry`; stopped after the test.
    For another registry: `with CuttingProxy(token_registry) as p: ...`."""
    p = CuttingProxy(registry)
    try:
        yield p
    finally:
        p.stop()
