// CWardenLinux: the kernel's process events connector (netlink CN_PROC).
#pragma once

#include <stdint.h>

/// A netlink socket subscribed to the process events connector, with a filter that lets only
/// exec events through, non-blocking and close-on-exec (CAP_NET_ADMIN). `receive_buffer_bytes`:
/// its receive buffer (0: the default). -1 with errno set on failure.
int warden_proc_events_open(int receive_buffer_bytes);

/// Unsubscribes (the kernel builds events only while someone listens) and closes.
void warden_proc_events_close(int fd);

/// Where an exec event's fields are in a datagram: `event` is the offset of `struct
/// proc_event` in the datagram, the others are offsets within it.
struct warden_proc_event_layout {
    uint32_t event, what, timestamp, exec_pid, exec_tgid, exec_what, size;
};
struct warden_proc_event_layout warden_proc_event_layout(void);
