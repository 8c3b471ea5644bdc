"""msb-vmm boots our guest kernel, through the host mode msb chooses.

On machines whose /dev/kvm cannot run standard guests this runs inside the
portable host, so each boot costs seconds: each test boots once and checks
everything that boot shows. The guest's PID 1 here is tests/guest/test_init.c,
a minimal init that reports what it sees on the console and can crash on
purpose; the agent's tests (test_agent.py) boot msb-agent instead.
"""
import os
import re
import subprocess

import pytest

from conftest import ROOT

VMRUN = ROOT / "build" / "tests" / "vmrun"
KERNEL = ROOT / "build" / "share" / "msb" / "vmlinux"
INITRD = ROOT / "build" / "tests" / "guest" / "initramfs.cpio"


def vmrun(env, *args, timeout=300):
    r = subprocess.run([str(VMRUN), *args, str(KERNEL), str(INITRD)], env=env,
                       capture_output=True, text=True, timeout=timeout)
    return r


def reported(out, key):
    m = re.search(rf"^msb-test-init: {key} (\d+)$", out, re.M)
    assert m, out
    return int(m.group(1))


def test_boot_runs_init_and_shuts_down(env):
    r = vmrun(env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "msb-test-init: hello" in r.stdout
    assert reported(r.stdout, "cpus") == 1
    # 256 MiB of RAM, less what the kernel keeps for itself
    assert 200 * 1024 < reported(r.stdout, "memtotal") <= 256 * 1024
    assert "msb-test-init: done" in r.stdout
    assert "Kernel panic" not in r.stdout


def test_cpus_and_memory_options(env):
    r = vmrun(env, "--cpus", "2", "--memory", "512")
    assert r.returncode == 0, r.stdout + r.stderr
    assert reported(r.stdout, "cpus") == 2
    assert 450 * 1024 < reported(r.stdout, "memtotal") <= 512 * 1024


def test_guest_crash_is_status_1(env):
    # init exits: the kernel panics, reboots (panic=-1), and the VMM reports
    # a crash rather than a clean shutdown
    r = vmrun(env, "--cmdline", "crash")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Kernel panic - not syncing: Attempted to kill init" in r.stdout


def test_vsock_stream_reaches_a_guest_listener(env):
    # host -> (portable host: QEMU chardev -> virtio-serial -> init's relay ->)
    # msb-vmm's vsock socket ("CONNECT 1024") -> virtio-vsock -> the guest's
    # listener, and its answer back the same way
    r = vmrun(env, "--send", "1024", "hello vsock", "--cmdline", "vsock")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == "HELLO VSOCK\n"
