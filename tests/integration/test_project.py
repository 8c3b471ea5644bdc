"""Project commands that read a Sandboxfile: msb init, msb list, msb tree,
through the real binary."""
import os

from conftest import msb

PROJECT = """\
# a comment msb keeps
sandboxes:
  web:
    image: "nginx:1.27"
    depends_on: ["api"]
  api:
    image: "python:3.11"
    memory: 512
    cpus: 2
    depends_on: ["db", "cache"]
  db:
    image: "postgres:16"
  cache:
    image: "redis:7"
    depends_on: ["db"]
builds:
  base:
    image: "python:3"
"""


def test_init_writes_a_project_that_parses(env, tmp_path):
    d = tmp_path / "proj"
    r = msb(env, "init", str(d))
    assert r.returncode == 0, r.stderr
    assert (d / ".msb").is_dir()
    assert (d / ".msb" / ".gitignore").read_text().splitlines()[-1] == "*"
    text = (d / "Sandboxfile").read_text()
    assert text.startswith("#")
    r = msb(env, "list", "-f", str(d))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1].split()[:3] == ["app", "sandbox", "msb.local/default"]
    # never over an existing Sandboxfile, which stays as it was
    (d / "Sandboxfile").write_text(PROJECT)
    r = msb(env, "init", str(d))
    assert r.returncode == 1 and "exists already" in r.stderr
    assert (d / "Sandboxfile").read_text() == PROJECT


def test_list_and_tree(env, tmp_path):
    (tmp_path / "Sandboxfile").write_text(PROJECT)
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    # found from a directory below, as git finds its repository
    r = msb(env, "list", cwd=sub)
    assert r.returncode == 0, r.stderr
    rows = [ln.split(None, 6) for ln in r.stdout.splitlines()[1:]]
    assert [(x[0], x[1], x[2]) for x in rows] == [
        ("web", "sandbox", "nginx:1.27"), ("api", "sandbox", "python:3.11"),
        ("db", "sandbox", "postgres:16"), ("cache", "sandbox", "redis:7"),
        ("base", "build", "python:3")]
    assert rows[1][3:] == ["512", "MiB", "2", "stopped  db, cache"]
    assert rows[4][3:] == ["1024", "MiB", "1", "-        -"]
    r = msb(env, "tree", "-f", str(tmp_path / "Sandboxfile"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("web (nginx:1.27)\n"
                        "└── api (python:3.11)\n"
                        "    ├── db (postgres:16)\n"
                        "    └── cache (redis:7)\n"
                        "        └── db (postgres:16)\n"
                        "build base (python:3)\n")


def test_errors_name_the_place(env, tmp_path):
    bad = tmp_path / "Sandboxfile"
    bad.write_text("sandboxes:\n  api:\n    image: x\n    memory: lots\n")
    r = msb(env, "list", "-f", str(tmp_path))
    assert r.returncode == 1
    assert r.stderr == (f"msb: error: {bad}:4:13: sandboxes.api.memory: expected a whole "
                        f'number of MiB, got "lots"\n')
    bad.write_text("sandboxes:\n  api:\n    image: x\n    depends_on: [db]\n"
                   "  db:\n    image: y\n    depends_on: [api]\n")
    r = msb(env, "tree", "-f", str(bad))
    assert r.returncode == 1 and "dependency cycle: api -> db -> api" in r.stderr, r.stderr
    r = msb(env, "list", cwd="/")
    assert r.returncode == 1 and "no Sandboxfile" in r.stderr and "msb init" in r.stderr
    for cmd in ("init", "list", "tree"):
        r = msb(env, cmd, "--help")
        assert r.returncode == 0 and r.stdout.startswith(f"usage: msb {cmd}"), (cmd, r.stderr)


COMMENTED = """\
# my project
meta:
  description: "demo"   # keep me

sandboxes:
    # the api
    api:
        image: "python:3.11"
        scripts:
            start: "python -m http.server"
        # trailing comment inside api
    db:
        image: postgres   # db comment

# builds below
builds:
    base:
        image: "python:3"
"""


def test_add_and_remove_keep_the_rest(env, tmp_path):
    f = tmp_path / "Sandboxfile"
    f.write_text(COMMENTED)
    r = msb(env, "add", "web", "-i", "nginx:1.27", "--memory", "256", "--env", "B=two words",
            "--start", 'nginx -g "daemon off;"', "--depends-on", "api", "-f", str(tmp_path))
    assert r.returncode == 0, r.stderr
    added = ('    web:\n'
             '        image: "nginx:1.27"\n'
             '        memory: 256\n'
             '        envs:\n'
             '            - "B=two words"\n'
             '        scripts:\n'
             '            start: "nginx -g \\"daemon off;\\""\n'
             '        depends_on:\n'
             '            - "api"\n')
    # every line as it was, the new block at the end of `sandboxes:`, in its indentation
    cut = COMMENTED.index("# db comment\n") + len("# db comment\n")
    assert f.read_text() == COMMENTED[:cut] + added + COMMENTED[cut:]
    r = msb(env, "list", "-f", str(f))
    assert "web" in r.stdout and "api" in r.stdout.splitlines()[3], r.stdout
    # refused, and nothing changes: a name taken, a sandbox another needs, bad numbers
    before = f.read_text()
    r = msb(env, "add", "db", "-i", "x", "-f", str(f))
    assert r.returncode == 1 and "exists already" in r.stderr
    r = msb(env, "rm", "api", "-f", str(f))
    assert r.returncode == 1 and 'no sandbox named "api"' in r.stderr, r.stderr
    r = msb(env, "add", "x", "-i", "y", "--memory", "lots", "-f", str(f))
    assert r.returncode == 2
    assert f.read_text() == before
    # removing what was added gives the file back, byte for byte
    r = msb(env, "remove", "web", "-f", str(f))
    assert r.returncode == 0, r.stderr
    assert f.read_text() == COMMENTED
    # a removed sandbox takes its lines and the comment indented inside it
    r = msb(env, "rm", "api", "-f", str(f))
    assert r.returncode == 0, r.stderr
    assert f.read_text() == COMMENTED.replace(
        '    api:\n        image: "python:3.11"\n        scripts:\n'
        '            start: "python -m http.server"\n        # trailing comment inside api\n', "")


def test_every_command_has_help(env):
    """Every command `msb --help` lists answers --help on stdout with exit 0,
    and `msb help COMMAND` says the same."""
    r = msb(env, "--help")
    assert r.returncode == 0
    lines = r.stdout.split("Commands:\n")[1].split("\n\n")[0].splitlines()
    cmds = [ln.split()[0] for ln in lines]
    assert {"exe", "pull", "init", "add", "list"} <= set(cmds), cmds
    for c in cmds:
        a = msb(env, c, "--help")
        assert a.returncode == 0 and a.stdout.startswith("usage: msb"), (c, a.stderr)
        b = msb(env, "help", c)
        assert (b.returncode, b.stdout) == (0, a.stdout), c
    r = msb(env, "help", "nosuch")
    assert r.returncode == 2 and "no command 'nosuch'" in r.stderr
