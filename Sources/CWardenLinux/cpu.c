// CWardenLinux: CPU placement of the calling thread (cpu_set_t's macros do not import).
#include "internal.h"

int warden_current_cpu(void) { return sched_getcpu(); }

int warden_pin_thread(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set);
}

int warden_thread_affinity_get(struct warden_cpu_mask *mask) {
    _Static_assert(sizeof(struct warden_cpu_mask) == sizeof(cpu_set_t), "cpu mask size");
    return sched_getaffinity(0, sizeof(cpu_set_t), (cpu_set_t *)mask->bits);
}

int warden_thread_affinity_set(const struct warden_cpu_mask *mask) {
    return sched_setaffinity(0, sizeof(cpu_set_t), (const cpu_set_t *)mask->bits);
}
