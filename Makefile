# msb build. `make` builds everything, `make test` runs every test.
# Layout of build/: bin/ (msb), libexec/msb/ (helpers, some static for the
# portable host), share/msb/ (the portable host image, the test guest),
# tools/ (build-time tools), obj/, tests/.

CC       ?= gcc
MUSL_CC  ?= musl-gcc
B        := build
PYTHON   := /usr/bin/python3

WARN     := -Wall -Wextra -Werror
CSTD     := -std=c11 -D_GNU_SOURCE
LIB_LIBS := -larchive -lisal -lcurl -lcrypto -ljansson -lsqlite3 -lyaml # layers (tar, zstd; gzip: isa-l), registries, sha256, JSON, the store, Sandboxfiles
CFLAGS   ?= -O2 -g
INC      := -Isrc/lib/include -Isrc/lib/util -Isrc/proto -Isrc
ALL_CFLAGS := $(CSTD) $(WARN) $(CFLAGS) $(INC)
# musl's headers lack the kernel's; borrow only linux/ and asm/ from the system.
MUSL_INC := $(B)/musl-inc
MUSL_CFLAGS := $(CSTD) $(WARN) -O2 -static -isystem $(MUSL_INC)

PROTO_SRCS := $(wildcard src/proto/*.c)
LIB_SRCS := $(wildcard src/lib/util/*.c src/lib/host/*.c src/lib/vmproc/*.c src/lib/vm/*.c \
                      src/lib/image/*.c src/lib/project/*.c) \
            src/kvmcheck/tinyvm.c $(PROTO_SRCS)
LIB_OBJS := $(patsubst %.c,$(B)/obj/%.o,$(LIB_SRCS)) $(B)/obj/src/kvmcheck/tinyvm_guest.o
CLI_SRCS := $(wildcard src/cli/*.c)
CLI_OBJS := $(patsubst %.c,$(B)/obj/%.o,$(CLI_SRCS))
HDRS     := $(wildcard src/*/*.h src/lib/*/*.h)
AGENT_SRCS := $(wildcard src/agent/*.c)

UNIT_TESTS := $(patsubst tests/unit/%.c,$(B)/tests/%,$(wildcard tests/unit/test_*.c))

.PHONY: all phost phost-bench kernel test unit integration asan bench fuzz format clean
VMM_SRCS := $(wildcard src/vmm/*.c src/vmm/virtio/*.c)
# The VMM's parts that need no /dev/kvm, for unit tests under ASan/UBSan.
VMM_PURE_SRCS := src/vmm/memory.c src/vmm/boot.c src/vmm/mptable.c src/vmm/serial.c \
	src/vmm/virtio/queue.c src/vmm/virtio/mmio.c src/vmm/virtio/vsock.c src/vmm/virtio/blk.c \
	src/vmm/evloop.c \
	src/vmm/timing.c src/vmm/snapfile.c

all: $(B)/bin/msb $(B)/bin/msx $(B)/bin/msi $(B)/bin/msr $(B)/libexec/msb/msb-kvm-smoke $(B)/libexec/msb/msb-vmm \
	$(B)/share/msb/kvm-smoke-guest.bin $(B)/share/msb/agent.cpio $(B)/lib/libmsb.so phost kernel

# -fPIC: the same objects make libmsb.a and libmsb.so
$(B)/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fPIC -c -o $@ $<

$(B)/obj/%.o: %.S
	@mkdir -p $(dir $@)
	$(CC) -c -o $@ $<

$(B)/lib/libmsb.a: $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# The shared library is what the Python tests (ctypes) and SDKs load.
$(B)/lib/libmsb.so: $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) -shared -o $@ $^ $(LIB_LIBS)

$(B)/bin/msb: $(CLI_OBJS) $(B)/lib/libmsb.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LIB_LIBS)

# msx is `msb exe` under its own name (main() looks at argv[0]).
$(B)/bin/msx: $(B)/bin/msb
	ln -sfn msb $@

# msi is `msb install`, and msr `msb run`, the same way.
$(B)/bin/msi: $(B)/bin/msb
	ln -sfn msb $@

$(B)/bin/msr: $(B)/bin/msb
	ln -sfn msb $@

$(MUSL_INC)/.stamp:
	@mkdir -p $(MUSL_INC)
	ln -sfn /usr/include/linux $(MUSL_INC)/linux
	ln -sfn /usr/include/x86_64-linux-gnu/asm $(MUSL_INC)/asm
	ln -sfn /usr/include/asm-generic $(MUSL_INC)/asm-generic
	touch $@

# Static (musl), so the same binary runs natively and inside the portable host.
$(B)/libexec/msb/msb-kvm-smoke: src/kvmcheck/kvm_smoke.c src/kvmcheck/tinyvm.c \
		src/kvmcheck/tinyvm_guest.S src/kvmcheck/tinyvm.h $(MUSL_INC)/.stamp
	@mkdir -p $(dir $@)
	$(MUSL_CC) $(MUSL_CFLAGS) -o $@ $(filter %.c %.S,$^)

# Static too: it runs natively and inside the portable host.
$(B)/libexec/msb/msb-vmm: $(VMM_SRCS) $(wildcard src/vmm/*.h src/vmm/virtio/*.h) src/lib/util/crc32.h src/lib/util/le.h $(MUSL_INC)/.stamp
	@mkdir -p $(dir $@)
	$(MUSL_CC) $(MUSL_CFLAGS) -o $@ $(VMM_SRCS) -lpthread

$(B)/libexec/msb/msb-phost-init: src/phost/init.c src/phost/status.h src/phost/resume.h src/lib/vmproc/vsock_uds.c $(MUSL_INC)/.stamp
	@mkdir -p $(dir $@)
	$(MUSL_CC) $(MUSL_CFLAGS) -o $@ src/phost/init.c src/lib/vmproc/vsock_uds.c

# The guest agent, PID 1 of every sandbox, and the initramfs that holds it.
$(B)/libexec/msb/msb-agent: $(AGENT_SRCS) $(PROTO_SRCS) $(HDRS) $(MUSL_INC)/.stamp
	@mkdir -p $(dir $@)
	$(MUSL_CC) $(MUSL_CFLAGS) -Isrc/proto -o $@ $(AGENT_SRCS) $(PROTO_SRCS)

$(B)/share/msb/agent.cpio: $(B)/libexec/msb/msb-agent $(B)/tools/mkcpio
	@mkdir -p $(dir $@)
	printf '%s\n' 'dir dev 0755' 'nod dev/console 0600 c 5 1' 'dir proc 0555' 'dir sys 0555' \
		'dir tmp 01777' 'dir run 0755' 'file init 0755 $<' > $(B)/obj/agent.manifest
	$(B)/tools/mkcpio $(B)/obj/agent.manifest $@

# The self-test guest as a file: msb doctor hands it to msb-kvm-smoke, through
# the portable host's shared-file path where it runs there.
$(B)/share/msb/kvm-smoke-guest.bin: $(B)/obj/src/kvmcheck/tinyvm_guest.o
	@mkdir -p $(dir $@)
	objcopy -O binary --only-section=.rodata $< $@

# msb's erofs writer over a directory tree (tests; images made from a directory)
$(B)/tools/mkerofs: src/tools/mkerofs.c src/lib/image/erofs.c src/lib/image/erofs_layout.c \
		src/lib/image/erofs.h src/lib/image/erofs_int.h src/lib/util/le.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ src/tools/mkerofs.c src/lib/image/erofs.c src/lib/image/erofs_layout.c

$(B)/tools/mkcpio: src/tools/mkcpio.c src/tools/cpio.c src/tools/cpio.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ src/tools/mkcpio.c src/tools/cpio.c

# Cached outside the clone by a hash of its inputs; cheap when nothing changed.
phost: $(B)/libexec/msb/msb-phost-init $(B)/libexec/msb/msb-kvm-smoke $(B)/libexec/msb/msb-vmm \
		$(B)/tools/mkcpio
	phost/build-image $(B) $(B)/share/msb

# The guest kernel: minutes to build once, then cached by a hash of its inputs.
kernel:
	kernel/build $(B)/share/msb

# ---- tests ---------------------------------------------------------------

SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
TEST_SRCS_lib := $(LIB_SRCS) src/tools/cpio.c $(VMM_PURE_SRCS) src/agent/session.c src/agent/spawn.c \
                 src/agent/user.c \
                 src/agent/root.c src/cli/keeper_proto.c
$(B)/tests/test_%: tests/unit/test_%.c $(TEST_SRCS_lib) src/kvmcheck/tinyvm_guest.S $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) -O1 -g $(SAN) $(INC) -Isrc -o $@ $< $(TEST_SRCS_lib) \
		src/kvmcheck/tinyvm_guest.S -lcmocka $(LIB_LIBS)

unit: $(UNIT_TESTS)
	@set -e; for t in $(UNIT_TESTS); do echo "== $$t"; $$t; done

# Every unit test is an ASan/UBSan build: the VMM's device and ring code,
# the agent's session and libmsb's connection (tests/unit/test_agent.c runs
# both ends over a socketpair). msb-vmm and msb-agent themselves ship static
# musl builds, which the sanitizers do not support.
asan: unit

# What the integration tests boot besides msb's own files.
$(B)/tests/guest/test-init: tests/guest/test_init.c $(MUSL_INC)/.stamp
	@mkdir -p $(dir $@)
	$(MUSL_CC) $(MUSL_CFLAGS) -o $@ $<

$(B)/tests/guest/initramfs.cpio: $(B)/tests/guest/test-init $(B)/tools/mkcpio
	printf 'dir dev 0755\nnod dev/console 0600 c 5 1\ndir proc 0755\nfile init 0755 %s\n' \
		$(B)/tests/guest/test-init > $(B)/tests/guest/initramfs.manifest
	$(B)/tools/mkcpio $(B)/tests/guest/initramfs.manifest $@

# The agent tests' guest: msb's agent as /init, a static busybox for the
# commands, and the hostile-guest program.
# Put into test images (not the initramfs): reads xattrs inside a sandbox.
$(B)/tests/guest/xattrs: tests/guest/xattrs.c $(MUSL_INC)/.stamp
	@mkdir -p $(dir $@)
	$(MUSL_CC) $(MUSL_CFLAGS) -o $@ tests/guest/xattrs.c

$(B)/tests/guest/hostile: tests/guest/hostile.c $(MUSL_INC)/.stamp
	@mkdir -p $(dir $@)
	$(MUSL_CC) $(MUSL_CFLAGS) -o $@ $<

BUSYBOX_CMDS := sh echo cat sleep head sha256sum true false kill nproc grep dd id pwd env \
	tty stty wc yes ls date hostname mount uname seq tr reboot
$(B)/tests/guest/agent-test.cpio: $(B)/libexec/msb/msb-agent $(B)/tests/guest/hostile $(B)/tools/mkcpio
	{ printf '%s\n' 'dir dev 0755' 'nod dev/console 0600 c 5 1' 'dir proc 0555' 'dir sys 0555' \
		'dir tmp 01777' 'dir run 0755' 'dir bin 0755' 'dir root 0700' \
		'file init 0755 $(B)/libexec/msb/msb-agent' 'file bin/busybox 0755 /bin/busybox' \
		'file bin/hostile 0755 $(B)/tests/guest/hostile'; \
	  for c in $(BUSYBOX_CMDS); do echo "symlink bin/$$c busybox"; done; } > $@.manifest
	$(B)/tools/mkcpio $@.manifest $@

$(B)/tests/vmrun: tests/tools/vmrun.c $(B)/lib/libmsb.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LIB_LIBS)

integration: all $(B)/tests/guest/initramfs.cpio $(B)/tests/guest/agent-test.cpio $(B)/tests/vmrun \
		$(B)/tools/mkerofs $(B)/tests/guest/xattrs
	$(PYTHON) -m pytest -v tests/integration

test: unit integration

# ---- benchmarks ----------------------------------------------------------

$(B)/bench/phost_start: bench/phost_start.c $(B)/lib/libmsb.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LIB_LIBS)

$(B)/bench/warm_start: bench/warm_start.c $(B)/lib/libmsb.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LIB_LIBS)

$(B)/bench/vm_start: bench/vm_start.c bench/qemu_compare.c bench/qemu_compare.h $(B)/lib/libmsb.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $(filter %.c %.a,$^)

$(B)/bench/exe_start: bench/exe_start.c bench/qemu_compare.c bench/qemu_compare.h \
		$(B)/lib/libmsb.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $(filter %.c %.a,$^) $(LIB_LIBS)

# Runs where the VMM runs (the benchmark portable host, or natively): msb-vmm
# against QEMU microvm with the same guest. Static, like msb-vmm.
$(B)/bench/msb-bench-compare: bench/phost_compare.c src/lib/vmproc/vsock_uds.c \
		src/lib/vmproc/vsock_uds.h $(PROTO_SRCS) src/proto/proto.h $(MUSL_INC)/.stamp
	@mkdir -p $(dir $@)
	$(MUSL_CC) $(MUSL_CFLAGS) -Isrc/proto -o $@ $(filter %.c,$^)

# The portable host image plus QEMU, its libraries and firmware, vhost-vsock
# and the helper above; cached apart from the normal image, which it extends.
phost-bench: phost $(B)/bench/msb-bench-compare
	phost/build-bench-image $(B) $(B)/share/msb

bench: all phost-bench $(B)/bench/phost_start $(B)/bench/vm_start $(B)/bench/warm_start \
		$(B)/bench/exe_start $(B)/bench/msb-bench-compare $(B)/tests/guest/agent-test.cpio
	$(B)/bench/phost_start
	$(B)/bench/vm_start
	$(B)/bench/warm_start
	$(B)/bench/exe_start
	$(PYTHON) bench/pull.py

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(B)

# ---- fuzzing (clang + libFuzzer); replay builds run a corpus under gcc ----

$(B)/fuzz/fuzz_proto: tests/fuzz/fuzz_proto.c $(PROTO_SRCS)
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -g -fsanitize=fuzzer,address,undefined -Isrc -o $@ $^

$(B)/fuzz/fuzz_snapfile: tests/fuzz/fuzz_snapfile.c src/vmm/snapfile.c
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -g -fsanitize=fuzzer,address,undefined -Isrc -o $@ $^

$(B)/fuzz/fuzz_user: tests/fuzz/fuzz_user.c src/agent/user.c
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -g -fsanitize=fuzzer,address,undefined -Isrc -o $@ $^

$(B)/fuzz/fuzz_sandboxfile: tests/fuzz/fuzz_sandboxfile.c $(wildcard src/lib/project/*.c) \
		src/lib/util/why.c
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -g -fsanitize=fuzzer,address,undefined -Isrc -Isrc/lib/util \
		-o $@ $(filter %.c,$^) -lyaml

$(B)/fuzz/fuzz_keeper_proto: tests/fuzz/fuzz_keeper_proto.c src/cli/keeper_proto.c
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -g -fsanitize=fuzzer,address,undefined -Isrc -o $@ $^

fuzz: $(B)/fuzz/fuzz_proto $(B)/fuzz/fuzz_snapfile $(B)/fuzz/fuzz_user $(B)/fuzz/fuzz_sandboxfile \
		$(B)/fuzz/fuzz_keeper_proto
	$(B)/fuzz/fuzz_proto -max_total_time=60
	$(B)/fuzz/fuzz_keeper_proto -max_total_time=60
	$(B)/fuzz/fuzz_snapfile -max_total_time=60
	$(B)/fuzz/fuzz_user -max_total_time=60
	@mkdir -p $(B)/fuzz/sandboxfile-corpus # new inputs go there, not into tests/data
	$(B)/fuzz/fuzz_sandboxfile -max_total_time=60 $(B)/fuzz/sandboxfile-corpus \
		tests/data/sandboxfile/good
