// CWardenLinux: the perf ring buffer of the sandbox's syscall-exit trace (see
// warden_exit_trace_open in include/CWardenLinux.h). In C: struct perf_event_attr and the ring
// buffer's head and tail, which need acquire and release ordering against the kernel.
#define _GNU_SOURCE

#include "CWardenLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int warden_exit_trace_open(int pid, int cpu, uint64_t tracepoint, const char *filter, int pages, void **ring) {
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_TRACEPOINT;
    attr.config = tracepoint;
    attr.sample_period = 1;
    attr.sample_type = PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_RAW;
    // The processes the traced one starts from now on are traced too.
    attr.inherit = 1;
    // Times comparable with clock_gettime(CLOCK_MONOTONIC), which the observer stamps its
    // answers with.
    attr.use_clockid = 1;
    attr.clockid = CLOCK_MONOTONIC;
    int fd = (int)syscall(SYS_perf_event_open, &attr, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC);
    if (fd < 0) return -1;
    // Kept in the kernel: only these calls' exits reach the buffer. (Inherited events use the
    // first event's filter.)
    if (filter && ioctl(fd, PERF_EVENT_IOC_SET_FILTER, filter) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    long page = sysconf(_SC_PAGESIZE);
    void *mapped = mmap(NULL, (size_t)(pages + 1) * (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mapped == MAP_FAILED) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    *ring = mapped;
    return fd;
}

int warden_exit_trace_drain(void *ring, int pages, struct warden_syscall_exit *out, int capacity, uint64_t *lost) {
    struct perf_event_mmap_page *control = ring;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t size = (size_t)pages * page;
    unsigned char *data = (unsigned char *)ring + page;
    uint64_t head = __atomic_load_n(&control->data_head, __ATOMIC_ACQUIRE);
    uint64_t tail = control->data_tail;
    int count = 0;
    unsigned char record[256];
    while (tail < head && count < capacity) {
        struct perf_event_header header;
        // A record may wrap around the end of the buffer: copied out in two parts then.
        for (size_t i = 0; i < sizeof header; i++) ((unsigned char *)&header)[i] = data[(tail + i) % size];
        if (header.size < sizeof header || tail + header.size > head) break;
        size_t length = header.size < sizeof record ? header.size : sizeof record;
        for (size_t i = 0; i < length; i++) record[i] = data[(tail + i) % size];
        if (header.type == PERF_RECORD_SAMPLE && length >= 8 + 8 + 8 + 4 + 24) {
            // {header, u32 pid, u32 tid, u64 time, u32 size, raw: common fields (8), long id, long ret}
            struct warden_syscall_exit *exit = &out[count];
            memcpy(&exit->tid, record + 12, 4);
            memcpy(&exit->time, record + 16, 8);
            memcpy(&exit->id, record + 28 + 8, 8);
            memcpy(&exit->ret, record + 28 + 16, 8);
            count++;
        } else if (header.type == PERF_RECORD_LOST && length >= 8 + 16) {
            uint64_t dropped;
            memcpy(&dropped, record + 16, 8);  // {header, u64 id, u64 lost}
            *lost += dropped;
        }
        tail += header.size;
    }
    __atomic_store_n(&control->data_tail, tail, __ATOMIC_RELEASE);
    return count;
}

void warden_exit_trace_unmap(void *ring, int pages) {
    if (ring) munmap(ring, (size_t)(pages + 1) * (size_t)sysconf(_SC_PAGESIZE));
}

// The releasing child: its own stack, this process's memory. System calls only (through
// syscall(2), which touches errno only on a failure, and none is expected here).
// Its arguments: {pipe read end, linger in ms, count, the descriptors it keeps in ascending
// order: the events' and the pipe's read end}.
static int release_main(void *argument) {
    const int *words = argument;
    const int read_end = words[0], linger_ms = words[1], count = words[2];
    const int *kept = words + 3;
    // Every other copy at once: the caller's other descriptors (its output, its database, its
    // listeners) must not outlive it here.
    unsigned int next = 0;
    for (int i = 0; i < count; i++) {
        if ((unsigned int)kept[i] > next) syscall(SYS_close_range, next, (unsigned int)kept[i] - 1, 0);
        next = (unsigned int)kept[i] + 1;
    }
    syscall(SYS_close_range, next, ~0U, 0);
    // The read ends when the caller has closed the write end, which it does after closing its
    // copies of the events: this process's copies are then the last ones.
    char byte;
    while (syscall(SYS_read, read_end, &byte, 1) < 0) {
    }
    syscall(SYS_close, read_end);
    // Held a while first: a run that starts meanwhile finds the tracepoint registered and opens
    // its events at once, instead of waiting for this unregistration, which holds the kernel's
    // lock of trace events through its grace period.
    struct timespec linger = { linger_ms / 1000, (long)(linger_ms % 1000) * 1000000L };
    while (syscall(SYS_nanosleep, &linger, &linger) < 0) {
    }
    syscall(SYS_close_range, 0, ~0U, 0);
    return 0;
}

static int ascending(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

int warden_close_in_child(const int *fds, int count, int linger_ms, void **stack_out) {
    const size_t size = 64 * 1024;
    *stack_out = NULL;
    int pipe_fds[2];
    void *stack = MAP_FAILED;
    if (count <= 1024 && pipe2(pipe_fds, O_CLOEXEC) == 0) {
        stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (stack == MAP_FAILED) {
            close(pipe_fds[0]);
            close(pipe_fds[1]);
        }
    }
    if (stack == MAP_FAILED) {
        for (int i = 0; i < count; i++) close(fds[i]);
        return 0;
    }
    int *arguments = stack;
    arguments[0] = pipe_fds[0];
    arguments[1] = linger_ms;
    arguments[2] = count + 1;
    memcpy(arguments + 3, fds, (size_t)count * sizeof(int));
    arguments[3 + count] = pipe_fds[0];
    qsort(arguments + 3, (size_t)count + 1, sizeof(int), ascending);
    // No signal handler of this process may run in the child (it shares this memory): it starts
    // with every signal blocked.
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    // CLONE_VM: no copy of this process's page tables. Not CLONE_FILES: a table of its own, with
    // copies of the events. A process, not a thread: it may outlive this one.
    int child = clone(release_main, (char *)stack + size, CLONE_VM | SIGCHLD, arguments);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    for (int i = 0; i < count; i++) close(fds[i]);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    if (child < 0) {
        munmap(stack, size);
        return 0;
    }
    *stack_out = stack;
    return child;
}

void warden_free_child_stack(void *stack) {
    if (stack) munmap(stack, 64 * 1024);
}
