"""`msb install` / `msb uninstall` / `msi`, and the bash completion script.

An installed command is a sh script that execs `msb exe`, so these tests run
it as a user would (by its path, with arguments and stdin) and check what
the sandbox did. VM runs are few and share one shape (--memory 256, 1 vCPU)
and one warm snapshot for the module (as test_images.py does); everything
else (refusals, uninstall, defaults, completion) needs no VM.
"""
import os
import pathlib
import shlex
import stat
import subprocess

import pytest

from conftest import MSB, ROOT, msb
from registry import *  # noqa: F401,F403

MEM = "256"
MARKER = "# written by msb install"
COMPLETION = ROOT / "share" / "bash-completion" / "msb"


@pytest.fixture
def bindir(tmp_path):
    return tmp_path / "bin"


@pytest.fixture(scope="module")
def image(registry, oci_images):
    """busybox (Cmd /bin/sh, no Entrypoint) as 127.0.0.1:PORT/ti/tools/bbox:latest."""
    return push(registry, busybox_image(oci_images), "latest", "ti/tools/bbox")


@pytest.fixture
def vm():
    if not os.path.exists("/dev/kvm"):
        pytest.skip("this machine has no /dev/kvm")


def run(env, *args, input=""):
    """msb with stdin a pipe (never the terminal pytest may have)."""
    return msb(env, *args, input=input)


def ok(r):
    assert r.returncode == 0, f"rc={r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r


def failed(r, rc, *needles):
    """Exit status rc; for rc 1 exactly one `msb: error:` line, holding every needle."""
    assert r.returncode == rc, f"rc={r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    text = r.stderr
    if rc == 1:
        errs = [ln for ln in r.stderr.splitlines() if ln.startswith("msb: error:")]
        assert len(errs) == 1, r.stderr
        text = errs[0]
    for n in needles:
        assert n in text, (n, r.stderr)


def command(env, path, *args, input=""):
    """Runs an installed command the way a shell would: by its path."""
    return subprocess.run([str(path), *args], env=env, input=input, capture_output=True,
                          text=True, timeout=300)


def listing(d):
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


# --------------------------------------------------------------------------------------
# installed commands run their image (real VMs)
# --------------------------------------------------------------------------------------

def test_install_then_run_with_args_stdin_exit_code(home, image, bindir, vm):
    odd = "it's \"quoted\" $HOME `id` \\ end"
    r = ok(run(home, "install", "--dir", str(bindir), "--memory", MEM, "--cpus", "1",
               "--env", f"ODD={odd}", "--workdir", "/tmp", "--user", "app", image, "my-tool"))
    path = bindir / "my-tool"
    # pulled at install time: the first run need not
    assert image in ok(run(home, "image", "ls")).stdout
    assert f"msb: installed {bindir}/my-tool: runs {image}" in r.stderr
    assert f"{bindir} is not on your PATH" in r.stderr
    assert listing(bindir) == ["my-tool"]  # no staging files left
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    lines = path.read_text().splitlines()
    assert lines[0] == "#!/bin/sh" and lines[1] == MARKER, lines
    # the real msb by its absolute path; every value in single quotes
    assert lines[-1].startswith(f"exec '{MSB.resolve()}' exe -q "), lines[-1]
    assert lines[-1].endswith(f" '{image}' -- \"$@\""), lines[-1]
    subprocess.run(["sh", "-n", str(path)], check=True)

    # arguments (one with a space) replace the image's Cmd; stdin and stdout
    # pass through; the options reached the sandbox; the exit status is the
    # command's
    script = 'pwd; id -u; printf "%s\\n" "$ODD"; printf "[%s]\\n" "$@"; wc -c; exit 3'
    r = command(home, path, "sh", "-c", script, "-", "a b", "c", input="12345")
    assert r.returncode == 3, r.stderr
    assert r.stdout.split("\n") == ["/tmp", "1000", odd, "[a b]", "[c]", "5", ""], r.stdout
    assert "pull" not in r.stderr

    # no arguments: the image's own Cmd (/bin/sh), reading stdin
    r = command(home, path, input="echo no-args $((40 + 2))\n")
    assert (r.returncode, r.stdout) == (0, "no-args 42\n"), r.stderr


def test_msi_program_form_default_alias(home, image, bindir, tmp_path, vm):
    msi = tmp_path / "msi"
    msi.symlink_to(MSB)
    r = subprocess.run([str(msi), "--dir", str(bindir), "--memory", MEM, "-q",
                        image + "~echo"], env=home, capture_output=True, text=True,
                       input="", timeout=300)
    ok(r)
    # the alias is the repository's last component
    assert listing(bindir) == ["bbox"]
    assert " -e 'echo' " in (bindir / "bbox").read_text()
    r = command(home, bindir / "bbox", "hello", "it's", "")
    assert (r.returncode, r.stdout) == (0, "hello it's \n"), r.stderr


# --------------------------------------------------------------------------------------
# what install and uninstall refuse (no VM)
# --------------------------------------------------------------------------------------

def test_refuses_foreign_force_replaces_own(home, image, bindir):
    bindir.mkdir()
    foreign = bindir / "bbox"
    foreign.write_text("#!/bin/sh\necho mine\n")
    for extra in ([], ["--force"]):
        r = run(home, "install", "--dir", str(bindir), *extra, image)
        failed(r, 1, f"{foreign} exists and was not written by msb",
               "remove it or choose another name")
        assert foreign.read_text() == "#!/bin/sh\necho mine\n"
    # a link is never ours, even to a script msb wrote
    ok(run(home, "install", "--dir", str(bindir), image, "t1"))
    (bindir / "t1-link").symlink_to(bindir / "t1")
    failed(run(home, "install", "--dir", str(bindir), "--force", image, "t1-link"), 1,
           "was not written by msb")
    assert (bindir / "t1-link").is_symlink()

    before = (bindir / "t1").read_text()
    failed(run(home, "install", "--dir", str(bindir), "--memory", "512", image, "t1"), 1,
           "is installed already", "--force")
    assert (bindir / "t1").read_text() == before
    ok(run(home, "install", "--dir", str(bindir), "--force", "--memory", "512", image, "t1"))
    after = (bindir / "t1").read_text()
    assert "--memory '512'" in after and "--memory" not in before
    assert listing(bindir) == ["bbox", "t1", "t1-link"]


def test_uninstall(home, image, bindir):
    ok(run(home, "install", "--dir", str(bindir), image, "one"))
    ok(run(home, "install", "--dir", str(bindir), image, "two"))
    (bindir / "mine").write_text("#!/bin/sh\n# written by someone\n")
    r = ok(run(home, "uninstall", "--dir", str(bindir), "one"))
    assert f"msb: removed {bindir}/one" in r.stderr
    # one refusal and one missing do not keep "two" from going; exit 1
    r = run(home, "uninstall", "--dir", str(bindir), "mine", "two", "nope")
    assert r.returncode == 1, r.stderr
    errs = [ln for ln in r.stderr.splitlines() if ln.startswith("msb: error:")]
    assert len(errs) == 2, r.stderr
    assert f"{bindir}/mine was not written by msb install" in errs[0]
    assert f"no command nope in {bindir}" in errs[1]
    assert listing(bindir) == ["mine"]
    assert (bindir / "mine").read_text() == "#!/bin/sh\n# written by someone\n"
    failed(run(home, "uninstall", "--dir", str(bindir), "../bin/mine"), 1,
           "is no command msb install makes")


def test_missing_image_fails_and_writes_nothing(home, registry, bindir):
    r = run(home, "install", "--dir", str(bindir), "-q", f"{registry.host}/ti/nope:1.0")
    failed(r, 1, "ti/nope")
    assert not bindir.exists()


def test_default_directory_and_path_hint(home, image, tmp_path):
    # $XDG_BIN_HOME, else $HOME/.local/bin, made when missing
    xdg = tmp_path / "xdg-bin"
    e = dict(home, XDG_BIN_HOME=str(xdg), PATH=f"{xdg}:{os.environ['PATH']}")
    r = ok(run(e, "install", image))
    assert listing(xdg) == ["bbox"] and "not on your PATH" not in r.stderr
    e = dict(home, HOME=str(tmp_path / "h"))
    e.pop("XDG_BIN_HOME", None)
    r = ok(run(e, "install", image, "b2"))
    local = tmp_path / "h" / ".local" / "bin"
    assert listing(local) == ["b2"]
    assert f'export PATH="{local}:$PATH"' in r.stderr
    ok(run(e, "uninstall", "b2"))
    assert listing(local) == []


def test_help_and_usage_errors(env):
    for args in (["install", "--help"], ["help", "install"], ["uninstall", "-h"]):
        r = ok(msb(env, *args))
        assert r.stdout.startswith("usage: msb " + args[-1 if args[0] == "help" else 0]), r.stdout
    assert "--force" in msb(env, "install", "--help").stdout
    top = ok(msb(env, "help")).stdout
    assert "\n  install " in top and "\n  uninstall " in top and "msi" in top
    for args, needle in ((["install"], "which image?"),
                         (["install", "a~"], "no PROGRAM after ~"),
                         (["install", "alpine", "../x"], "bad ALIAS ../x"),
                         (["install", "alpine", "-x"], "bad argument -x"),
                         (["install", "--memory", "1", "alpine"], "--memory takes MiB"),
                         (["install", "alpine", "a", "b"], "bad argument b"),
                         (["uninstall"], "which command?")):
        failed(msb(env, *args), 2, needle)


# --------------------------------------------------------------------------------------
# bash completion
# --------------------------------------------------------------------------------------

def complete(env, *words, line=None, cwd=None):
    """COMPREPLY of _msb for the words (the last being completed), or for a
    command line as bash hands it over (COMP_LINE, COMP_POINT at its end)."""
    setup = f"COMP_LINE={shlex.quote(line)}; COMP_POINT=${{#COMP_LINE}}; " if line else ""
    script = (f"source {shlex.quote(str(COMPLETION))}; "
              f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)}); "
              f"COMP_CWORD={len(words) - 1}; {setup}_msb; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    e = dict(env, PATH=f"{MSB.parent}:{env['PATH']}")
    r = subprocess.run(["bash", "--norc", "-c", script], env=e, capture_output=True, text=True,
                       timeout=60, cwd=cwd)
    assert r.returncode == 0, r.stderr
    return [w for w in r.stdout.splitlines() if w]


def test_completion_commands_and_options(env, bindir):
    assert complete(env, "msb", "ins") == ["install"]
    assert "uninstall" in complete(env, "msb", "un")
    listed = {ln.split()[0] for ln in
              ok(msb(env, "help")).stdout.split("Commands:\n")[1].split("\n\n")[0].splitlines()}
    assert listed <= set(complete(env, "msb", ""))
    # exe's options are the ones its --help lists
    help_opts = {w.rstrip(",") for ln in ok(msb(env, "exe", "--help")).stdout.splitlines()
                 if ln.lstrip().startswith("-") for w in ln.split() if w.startswith("--")}
    assert {"--memory", "--exec", "--insecure"} <= help_opts
    got = set(complete(env, "msb", "exe", "--"))
    assert help_opts <= got, help_opts - got
    assert set(complete(env, "msx", "--m")) == {"--memory"}
    assert {"--force", "--dir"} <= set(complete(env, "msi", "--"))
    # a subcommand, and what uninstall can remove
    assert complete(env, "msb", "image", "") == ["ls", "rm", "prune"]
    bindir.mkdir()
    (bindir / "mine").write_text("#!/bin/sh\n")
    (bindir / "ours").write_text("#!/bin/sh\n" + MARKER + "\nexec true\n")
    assert complete(env, "msb", "uninstall", "--dir", str(bindir), "") == ["ours"]
    r = subprocess.run(["bash", "--norc", "-c",
                        f"source {COMPLETION}; complete -p msb msx msi msr"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.count("-F _msb") == 4, r.stdout + r.stderr


def test_completion_images_and_sandboxes(home, image, tmp_path):
    ok(run(home, "pull", "-q", image))
    assert complete(home, "msb", "exe", "") == [image]
    assert complete(home, "msi", "") == [image]
    host = image.split(":")[0]
    # bash splits words at ':', so it gets the rest after the last one
    assert complete(home, "msb", "pull", host, ":", "", line=f"msb pull {host}:") == \
        [image.split(":", 1)[1]]
    proj = tmp_path / "proj"
    ok(msb(home, "init", str(proj)))
    names = complete(home, "msb", "remove", "-f", str(proj), "")
    assert names and "NAME" not in names
    listed = ok(msb(home, "list", "-f", str(proj))).stdout.splitlines()[1:]
    assert names == [ln.split()[0] for ln in listed]
    # msr is msb run: its first word is a sandbox
    assert complete(home, "msr", "", cwd=proj) == names
