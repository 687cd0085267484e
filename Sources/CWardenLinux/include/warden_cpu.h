// CWardenLinux: CPU placement of the calling thread.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// sched_getcpu(3): the CPU the calling thread runs on now.
int warden_current_cpu(void);

/// A `cpu_set_t`, opaque to Swift (its CPU_* macros do not import).
struct warden_cpu_mask {
    unsigned long bits[1024 / (8 * sizeof(unsigned long))];
};

/// sched_setaffinity(2) of the calling thread to `cpu` alone.
int warden_pin_thread(int cpu);

/// sched_getaffinity(2) / sched_setaffinity(2) of the calling thread.
int warden_thread_affinity_get(struct warden_cpu_mask *mask);
int warden_thread_affinity_set(const struct warden_cpu_mask *mask);
