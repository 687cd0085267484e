// CWardenLinux: the sandbox's trace of system call exits (see
// include/warden_exit_trace.h): a BPF program on the raw sys_exit tracepoint, written here as
// instructions, and its ring buffer, whose positions need acquire and release ordering against
// the kernel.
#include "internal.h"

#include <errno.h>
#include <linux/bpf.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define INSN(c, d, s, o, i) ((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) })
#define MOV_REG(d, s) INSN(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0)
#define MOV_IMM(d, v) INSN(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, v)
#define ADD_IMM(d, v) INSN(BPF_ALU64 | BPF_ADD | BPF_K, d, 0, 0, v)
#define OR_REG(d, s) INSN(BPF_ALU64 | BPF_OR | BPF_X, d, s, 0, 0)
#define LOAD64(d, s, o) INSN(BPF_LDX | BPF_MEM | BPF_DW, d, s, o, 0)
#define STORE64(d, s, o) INSN(BPF_STX | BPF_MEM | BPF_DW, d, s, o, 0)
#define STORE32_IMM(d, o, v) INSN(BPF_ST | BPF_MEM | BPF_W, d, 0, o, v)
#define CALL(f) INSN(BPF_JMP | BPF_CALL, 0, 0, 0, f)
#define JUMP_NE(d, v, o) INSN(BPF_JMP | BPF_JNE | BPF_K, d, 0, o, v)
#define JUMP_EQ(d, v, o) INSN(BPF_JMP | BPF_JEQ | BPF_K, d, 0, o, v)
#define JUMP(o) INSN(BPF_JMP | BPF_JA, 0, 0, o, 0)
#define EXIT() INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
#define LOAD_IMM64(d, s, v) \
    INSN(BPF_LD | BPF_DW | BPF_IMM, d, s, 0, (int32_t)(uint32_t)(uint64_t)(v)), \
        INSN(0, 0, 0, 0, (int32_t)((uint64_t)(v) >> 32))

static long bpf(int command, union bpf_attr *attributes) {
    return syscall(SYS_bpf, command, attributes, sizeof *attributes);
}

#if defined(__x86_64__)

// struct pt_regs (x86_64): orig_ax at 120, ip at 128, cs at 136. A 32-bit call (int 0x80,
// sysenter) comes from the i386 code segment: its numbers are i386's.
enum { REGS_ORIG_AX = 120, REGS_CS = 136, USER32_CS = 0x23 };

int warden_exit_trace_load(const int *native, int native_count, const int *compat, int compat_count, int ring_bytes,
                           struct warden_exit_trace *trace) {
    memset(trace, 0, sizeof *trace);
    trace->map = trace->link = trace->target = trace->program = -1;
    if (native_count + compat_count > 256) {
        errno = E2BIG;
        return -1;
    }
    union bpf_attr attributes;
    memset(&attributes, 0, sizeof attributes);
    attributes.map_type = BPF_MAP_TYPE_RINGBUF;
    attributes.max_entries = (uint32_t)ring_bytes;
    int map = (int)bpf(BPF_MAP_CREATE, &attributes);
    if (map < 0) return -1;
    // The pid namespace followed, {device, inode}, set for each run (warden_exit_trace_target).
    memset(&attributes, 0, sizeof attributes);
    attributes.map_type = BPF_MAP_TYPE_ARRAY;
    attributes.key_size = 4;
    attributes.value_size = 16;
    attributes.max_entries = 1;
    int target = (int)bpf(BPF_MAP_CREATE, &attributes);
    if (target < 0) {
        int saved = errno;
        close(map);
        errno = saved;
        return -1;
    }

    // r6: the context (args[0]: struct pt_regs *, args[1]: the return value); r8: the call's
    // number, with bit 32 set for an i386 call.
    struct bpf_insn program[600];
    int n = 0, exit_jumps[8], exits = 0;
    program[n++] = MOV_REG(6, 1);
    // orig_ax, ip and cs in one read.
    program[n++] = LOAD64(7, 6, 0);
    program[n++] = MOV_REG(1, 10);
    program[n++] = ADD_IMM(1, -24);
    program[n++] = MOV_IMM(2, 24);
    program[n++] = MOV_REG(3, 7);
    program[n++] = ADD_IMM(3, REGS_ORIG_AX);
    program[n++] = CALL(BPF_FUNC_probe_read_kernel);
    exit_jumps[exits++] = n;
    program[n++] = JUMP_NE(0, 0, 0);
    program[n++] = LOAD64(8, 10, -24);
    program[n++] = LOAD64(9, 10, -8);
    // The number first (most calls are none of these), by the caller's ABI.
    int to_compat = n;
    program[n++] = JUMP_EQ(9, USER32_CS, 0);
    int native_first = n;
    for (int i = 0; i < native_count; i++) program[n++] = JUMP_EQ(8, native[i], 0);
    exit_jumps[exits++] = n;
    program[n++] = JUMP(0);
    program[to_compat].off = (int16_t)(n - to_compat - 1);
    int compat_first = n;
    for (int i = 0; i < compat_count; i++) program[n++] = JUMP_EQ(8, compat[i], 0);
    exit_jumps[exits++] = n;
    program[n++] = JUMP(0);
    int compat_match = n;
    struct bpf_insn flag[] = { LOAD_IMM64(1, 0, 1ULL << 32) };
    program[n++] = flag[0];
    program[n++] = flag[1];
    program[n++] = OR_REG(8, 1);
    int match = n;
    for (int i = 0; i < native_count; i++) program[native_first + i].off = (int16_t)(match - (native_first + i) - 1);
    for (int i = 0; i < compat_count; i++)
        program[compat_first + i].off = (int16_t)(compat_match - (compat_first + i) - 1);
    // Then whether the caller is the jail's: its pid namespace, by device and inode.
    struct bpf_insn target_map[] = { LOAD_IMM64(1, BPF_PSEUDO_MAP_FD, target) };
    program[n++] = target_map[0];
    program[n++] = target_map[1];
    program[n++] = STORE32_IMM(10, -40, 0);
    program[n++] = MOV_REG(2, 10);
    program[n++] = ADD_IMM(2, -40);
    program[n++] = CALL(BPF_FUNC_map_lookup_elem);
    exit_jumps[exits++] = n;
    program[n++] = JUMP_EQ(0, 0, 0);
    program[n++] = LOAD64(1, 0, 0);
    program[n++] = LOAD64(2, 0, 8);
    program[n++] = MOV_REG(3, 10);
    program[n++] = ADD_IMM(3, -32);
    program[n++] = MOV_IMM(4, 8);
    program[n++] = CALL(BPF_FUNC_get_ns_current_pid_tgid);
    exit_jumps[exits++] = n;
    program[n++] = JUMP_NE(0, 0, 0);
    // {pid and tid in the initial namespace, CLOCK_MONOTONIC ns, number, return value}
    struct bpf_insn ring[] = { LOAD_IMM64(1, BPF_PSEUDO_MAP_FD, map) };
    program[n++] = ring[0];
    program[n++] = ring[1];
    program[n++] = MOV_IMM(2, 32);
    program[n++] = MOV_IMM(3, 0);
    program[n++] = CALL(BPF_FUNC_ringbuf_reserve);
    exit_jumps[exits++] = n;
    program[n++] = JUMP_EQ(0, 0, 0);
    program[n++] = MOV_REG(7, 0);
    program[n++] = CALL(BPF_FUNC_get_current_pid_tgid);
    program[n++] = STORE64(7, 0, 0);
    program[n++] = CALL(BPF_FUNC_ktime_get_ns);
    program[n++] = STORE64(7, 0, 8);
    program[n++] = STORE64(7, 8, 16);
    program[n++] = LOAD64(1, 6, 8);
    program[n++] = STORE64(7, 1, 24);
    program[n++] = MOV_REG(1, 7);
    // No wake-up: nothing waits on the buffer, which is drained as the observer goes; a
    // wake-up is an interrupt (a VM exit, in a VM).
    program[n++] = MOV_IMM(2, BPF_RB_NO_WAKEUP);
    program[n++] = CALL(BPF_FUNC_ringbuf_submit);
    int end = n;
    program[n++] = MOV_IMM(0, 0);
    program[n++] = EXIT();
    for (int i = 0; i < exits; i++) program[exit_jumps[i]].off = (int16_t)(end - exit_jumps[i] - 1);

    memset(&attributes, 0, sizeof attributes);
    attributes.prog_type = BPF_PROG_TYPE_RAW_TRACEPOINT;
    attributes.insns = (uint64_t)(uintptr_t)program;
    attributes.insn_cnt = (uint32_t)n;
    attributes.license = (uint64_t)(uintptr_t) "GPL";
    int loaded = (int)bpf(BPF_PROG_LOAD, &attributes);
    if (loaded < 0) {
        int saved = errno;
        close(map);
        close(target);
        errno = saved;
        return -1;
    }
    int saved;
    // The consumer's position (written here), then the producer's page and the data, which
    // the kernel maps twice in a row: a record that wraps around reads as one.
    long page = sysconf(_SC_PAGESIZE);
    void *consumer = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED, map, 0);
    void *producer =
        consumer == MAP_FAILED ? MAP_FAILED
                               : mmap(NULL, (size_t)page + 2 * (size_t)ring_bytes, PROT_READ, MAP_SHARED, map, page);
    if (consumer == MAP_FAILED || producer == MAP_FAILED) {
        saved = errno;
        if (consumer != MAP_FAILED) munmap(consumer, (size_t)page);
        close(loaded);
        close(target);
        close(map);
        errno = saved;
        return -1;
    }
    trace->map = map;
    trace->target = target;
    trace->program = loaded;
    trace->consumer = consumer;
    trace->producer = producer;
    trace->ring_bytes = ring_bytes;
    return 0;
}

#else

int warden_exit_trace_load(const int *native, int native_count, const int *compat, int compat_count, int ring_bytes,
                           struct warden_exit_trace *trace) {
    (void)native, (void)native_count, (void)compat, (void)compat_count, (void)ring_bytes;
    memset(trace, 0, sizeof *trace);
    trace->map = trace->link = trace->target = trace->program = -1;
    errno = ENOTSUP;  // the program reads x86_64's struct pt_regs
    return -1;
}

#endif

int warden_exit_trace_target(struct warden_exit_trace *trace, uint64_t pidns_device, uint64_t pidns_inode) {
    uint32_t key = 0;
    uint64_t value[2] = { pidns_device, pidns_inode };
    union bpf_attr attributes;
    memset(&attributes, 0, sizeof attributes);
    attributes.map_fd = (uint32_t)trace->target;
    attributes.key = (uint64_t)(uintptr_t)&key;
    attributes.value = (uint64_t)(uintptr_t)value;
    attributes.flags = BPF_ANY;
    return bpf(BPF_MAP_UPDATE_ELEM, &attributes) == 0 ? 0 : -1;
}

int warden_exit_trace_attach(struct warden_exit_trace *trace) {
    if (trace->link >= 0) return 0;
    union bpf_attr attributes;
    memset(&attributes, 0, sizeof attributes);
    attributes.raw_tracepoint.name = (uint64_t)(uintptr_t) "sys_exit";
    attributes.raw_tracepoint.prog_fd = (uint32_t)trace->program;
    int link = (int)bpf(BPF_RAW_TRACEPOINT_OPEN, &attributes);
    if (link < 0) return -1;
    trace->link = link;
    return 0;
}

void warden_exit_trace_detach(struct warden_exit_trace *trace) {
    if (trace->link >= 0) close(trace->link);
    trace->link = -1;
}

int warden_exit_trace_drain(struct warden_exit_trace *trace, struct warden_syscall_exit *out, int capacity) {
    if (trace->map < 0) return 0;
    long page = sysconf(_SC_PAGESIZE);
    uint64_t *consumer_position = trace->consumer;
    const uint64_t *producer_position = trace->producer;
    const unsigned char *data = (const unsigned char *)trace->producer + page;
    const uint64_t mask = (uint64_t)trace->ring_bytes - 1;
    uint64_t consumed = __atomic_load_n(consumer_position, __ATOMIC_ACQUIRE);
    uint64_t produced = __atomic_load_n(producer_position, __ATOMIC_ACQUIRE);
    int count = 0;
    while (consumed < produced && count < capacity) {
        const uint32_t *header = (const uint32_t *)(data + (consumed & mask));
        uint32_t length = __atomic_load_n(header, __ATOMIC_ACQUIRE);
        if (length & BPF_RINGBUF_BUSY_BIT) break;  // still being written
        if (!(length & BPF_RINGBUF_DISCARD_BIT) && (length & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT)) >= 32) {
            const unsigned char *record = (const unsigned char *)header + BPF_RINGBUF_HDR_SZ;
            uint64_t identity, time, number;
            int64_t value;
            memcpy(&identity, record, 8);
            memcpy(&time, record + 8, 8);
            memcpy(&number, record + 16, 8);
            memcpy(&value, record + 24, 8);
            out[count].tid = (int32_t)(uint32_t)identity;
            out[count].time = time;
            out[count].id = (int64_t)number;
            out[count].ret = value;
            count++;
        }
        uint32_t size = (length & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT)) + BPF_RINGBUF_HDR_SZ;
        consumed += (size + 7) & ~7u;
        __atomic_store_n(consumer_position, consumed, __ATOMIC_RELEASE);
    }
    return count;
}

void warden_exit_trace_close(struct warden_exit_trace *trace) {
    long page = sysconf(_SC_PAGESIZE);
    warden_exit_trace_detach(trace);
    if (trace->producer) munmap(trace->producer, (size_t)page + 2 * (size_t)trace->ring_bytes);
    if (trace->consumer) munmap(trace->consumer, (size_t)page);
    if (trace->program >= 0) close(trace->program);
    if (trace->target >= 0) close(trace->target);
    if (trace->map >= 0) close(trace->map);
    trace->map = trace->target = trace->program = -1;
    trace->consumer = trace->producer = NULL;
}
