// CWardenLinux: the perf ring buffer of the sandbox's syscall-exit trace (see
// warden_exit_trace_open in include/CWardenLinux.h). In C: struct perf_event_attr and the ring
// buffer's head and tail, which need acquire and release ordering against the kernel.

#include "CWardenLinux.h"

#include <errno.h>
#include <linux/perf_event.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
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

void warden_exit_trace_close(int fd, void *ring, int pages) {
    if (ring) munmap(ring, (size_t)(pages + 1) * (size_t)sysconf(_SC_PAGESIZE));
    if (fd >= 0) close(fd);
}
