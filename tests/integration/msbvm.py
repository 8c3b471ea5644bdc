"""libmsb's VM API from Python (ctypes), as the tests use it.

A thin, faithful binding of msb.h's msb_vm_* and msb_exec_* functions: the
tests exercise the public C API itself, not a second implementation.
"""
import ctypes
import os
from ctypes import (POINTER, Structure, byref, c_char, c_char_p, c_int, c_size_t, c_uint,
                    c_uint32, c_void_p, create_string_buffer)

from conftest import ROOT

BUILD = ROOT / "build"
MSB_STDOUT, MSB_STDERR = 1, 2


class Err(Structure):
    _fields_ = [("code", c_int), ("msg", c_char * 1024)]


PROGRESS = ctypes.CFUNCTYPE(None, c_void_p, c_char_p)


class Disk(Structure):
    _fields_ = [("path", c_char_p), ("writable", c_int)]


class VmOpts(Structure):
    _fields_ = [("size", c_size_t), ("kernel", c_char_p), ("initrd", c_char_p),
                ("mem_mib", c_uint), ("cpus", c_uint), ("boot_timeout_ms", c_int),
                ("name", c_char_p), ("vmm_args", c_void_p), ("restore_from", c_char_p),
                ("snapshot_to", c_char_p), ("cold", c_int), ("hostname", c_char_p),
                ("progress", PROGRESS), ("progress_arg", c_void_p),
                ("disks", POINTER(Disk)), ("ndisks", c_size_t)]


class ExecOpts(Structure):
    _fields_ = [("size", c_size_t), ("argv", POINTER(c_char_p)), ("env", POINTER(c_char_p)),
                ("cwd", c_char_p), ("uid", c_uint32), ("gid", c_uint32), ("tty", c_int),
                ("rows", c_uint), ("cols", c_uint), ("with_stdin", c_int),
                ("start_timeout_ms", c_int), ("user", c_char_p)]


class Exit(Structure):
    _fields_ = [("signaled", c_int), ("code", c_int), ("signo", c_int),
                ("core_dumped", c_int)]


class MsbError(Exception):
    def __init__(self, code, msg):
        super().__init__(f"{msg} (errno {-code})")
        self.errno = -code
        self.msg = msg


def _lib():
    os.environ.setdefault("MSB_SHARE_DIR", str(BUILD / "share" / "msb"))
    os.environ.setdefault("MSB_LIBEXEC_DIR", str(BUILD / "libexec" / "msb"))
    lib = ctypes.CDLL(str(BUILD / "lib" / "libmsb.so"), use_errno=True)
    sigs = {
        "msb_vm_start": (c_int, [POINTER(VmOpts), POINTER(c_void_p), POINTER(Err)]),
        "msb_vm_agent": (c_char_p, [c_void_p]),
        "msb_vm_hostname": (c_char_p, [c_void_p]),
        "msb_vm_mount_root": (c_int, [c_void_p, c_uint, c_int, c_int, POINTER(Err)]),
        "msb_vm_log": (c_char_p, [c_void_p]),
        "msb_vm_pid": (c_int, [c_void_p]),
        "msb_vm_ping": (c_int, [c_void_p, c_int, POINTER(Err)]),
        "msb_vm_stop": (c_int, [c_void_p, c_int, POINTER(Err)]),
        "msb_vm_snapshot": (c_int, [c_void_p, c_int, POINTER(Err)]),
        "msb_vm_destroy": (None, [c_void_p]),
        "msb_exec_start": (c_int, [c_void_p, POINTER(ExecOpts), POINTER(c_void_p),
                                   POINTER(Err)]),
        "msb_exec_pid": (c_uint32, [c_void_p]),
        "msb_exec_write": (c_int, [c_void_p, c_char_p, c_size_t, c_int, POINTER(Err)]),
        "msb_exec_close_stdin": (c_int, [c_void_p, POINTER(Err)]),
        "msb_exec_read": (ctypes.c_ssize_t, [c_void_p, POINTER(c_int), c_void_p, c_size_t,
                                             c_int, POINTER(Err)]),
        "msb_exec_signal": (c_int, [c_void_p, c_int, POINTER(Err)]),
        "msb_exec_resize": (c_int, [c_void_p, c_uint, c_uint, POINTER(Err)]),
        "msb_exec_wait": (c_int, [c_void_p, c_int, POINTER(Exit), POINTER(Err)]),
        "msb_exec_free": (None, [c_void_p]),
        "msb_disk_make": (c_int, [c_char_p, ctypes.c_uint64, POINTER(Err)]),
    }
    for name, (res, args) in sigs.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    return lib


LIB = _lib()


def _check(r, err):
    if r < 0:
        raise MsbError(r, err.msg.decode(errors="replace"))
    return r


def _strv(items):
    if items is None:
        return None
    arr = (c_char_p * (len(items) + 1))()
    for i, s in enumerate(items):
        arr[i] = s.encode() if isinstance(s, str) else s
    arr[len(items)] = None
    return arr


def disk_make(path, size=64 << 20):
    """A writable layer (sparse ext4) at @path, as project sandboxes have."""
    err = Err()
    _check(LIB.msb_disk_make(str(path).encode(), size, byref(err)), err)


class Exec:
    def __init__(self, vm, handle):
        self.vm, self.h = vm, handle

    @property
    def pid(self):
        return LIB.msb_exec_pid(self.h)

    def write(self, data, timeout_ms=120000):
        err = Err()
        _check(LIB.msb_exec_write(self.h, data, len(data), timeout_ms, byref(err)), err)

    def close_stdin(self):
        err = Err()
        _check(LIB.msb_exec_close_stdin(self.h, byref(err)), err)

    def read(self, size=65536, timeout_ms=120000):
        """(stream, bytes); (0, b"") at the end of both streams."""
        buf = create_string_buffer(size)
        st, err = c_int(0), Err()
        n = _check(LIB.msb_exec_read(self.h, byref(st), buf, size, timeout_ms, byref(err)), err)
        return (st.value, buf.raw[:n]) if n else (0, b"")

    def signal(self, signo):
        err = Err()
        _check(LIB.msb_exec_signal(self.h, signo, byref(err)), err)

    def resize(self, rows, cols):
        err = Err()
        _check(LIB.msb_exec_resize(self.h, rows, cols, byref(err)), err)

    def wait(self, timeout_ms=120000):
        st, err = Exit(), Err()
        _check(LIB.msb_exec_wait(self.h, timeout_ms, byref(st), byref(err)), err)
        return st

    def output(self, timeout_ms=120000):
        """Everything the command writes, as (stdout, stderr)."""
        out = {MSB_STDOUT: bytearray(), MSB_STDERR: bytearray()}
        while True:
            st, data = self.read(timeout_ms=timeout_ms)
            if not st:
                return bytes(out[MSB_STDOUT]), bytes(out[MSB_STDERR])
            out[st] += data

    def free(self):
        if self.h:
            LIB.msb_exec_free(self.h)
            self.h = None


class VM:
    def __init__(self, mem_mib=256, cpus=1, kernel=None, initrd=None, timeout_ms=0,
                 restore_from=None, snapshot_to=None, cold=False, hostname=None, progress=None,
                 disks=()):
        """progress: called with each progress line (str) msb_vm_start() reports;
        disks: (path, writable) pairs, slot 0 first."""
        darr = (Disk * max(len(disks), 1))(*[Disk(str(p).encode(), int(w)) for p, w in disks])
        cb = PROGRESS(lambda _arg, msg: progress(msg.decode())) if progress else PROGRESS()
        o = VmOpts(size=ctypes.sizeof(VmOpts), mem_mib=mem_mib, cpus=cpus,
                   boot_timeout_ms=timeout_ms, name=b"test",
                   kernel=str(kernel).encode() if kernel else None,
                   initrd=str(initrd).encode() if initrd else None,
                   restore_from=str(restore_from).encode() if restore_from else None,
                   snapshot_to=str(snapshot_to).encode() if snapshot_to else None,
                   cold=int(cold), hostname=hostname.encode() if hostname else None,
                   progress=cb, disks=darr if disks else None, ndisks=len(disks))
        h, err = c_void_p(), Err()
        _check(LIB.msb_vm_start(byref(o), byref(h), byref(err)), err)
        self.h = h

    @property
    def hostname(self):
        return LIB.msb_vm_hostname(self.h).decode()

    @property
    def agent(self):
        return LIB.msb_vm_agent(self.h).decode()

    @property
    def log(self):
        return LIB.msb_vm_log(self.h).decode()

    @property
    def pid(self):
        return LIB.msb_vm_pid(self.h)

    def ping(self, timeout_ms=60000):
        err = Err()
        _check(LIB.msb_vm_ping(self.h, timeout_ms, byref(err)), err)

    def exec(self, argv, env=None, cwd=None, tty=False, rows=0, cols=0, stdin=False, uid=0,
             gid=0, user=None):
        self._keep = (_strv(argv), _strv(env))
        o = ExecOpts(size=ctypes.sizeof(ExecOpts), argv=self._keep[0], env=self._keep[1],
                     cwd=cwd.encode() if cwd else None, uid=uid, gid=gid, tty=int(tty),
                     rows=rows, cols=cols, with_stdin=int(stdin),
                     user=user.encode() if user is not None else None)
        h, err = c_void_p(), Err()
        _check(LIB.msb_exec_start(self.h, byref(o), byref(h), byref(err)), err)
        return Exec(self, h)

    def run(self, argv, input=None, **kw):
        """Runs to the end: (exit, stdout, stderr)."""
        x = self.exec(argv, stdin=input is not None, **kw)
        try:
            if input is not None:
                x.write(input)
                x.close_stdin()
            out, err = x.output()
            return x.wait(), out, err
        finally:
            x.free()

    def mount_root(self, disk=0, wait_ms=30000, upper=-1):
        err = Err()
        _check(LIB.msb_vm_mount_root(self.h, disk, upper, wait_ms, byref(err)), err)

    def snapshot(self, timeout_ms=300000):
        err = Err()
        _check(LIB.msb_vm_snapshot(self.h, timeout_ms, byref(err)), err)

    def stop(self, timeout_ms=120000):
        err = Err()
        return _check(LIB.msb_vm_stop(self.h, timeout_ms, byref(err)), err)

    def destroy(self):
        if self.h:
            LIB.msb_vm_destroy(self.h)
            self.h = None
