// CSeccomp: libseccomp (Debian's libseccomp-dev) as Swift sees it.
#pragma once
#include <seccomp.h>
#include <linux/seccomp.h>

// Function-like macros are not imported into Swift; these inline functions stand in for them.
static inline uint32_t cseccomp_act_errno(uint16_t e) { return SCMP_ACT_ERRNO(e); }
// The architecture tokens (AUDIT_ARCH_* values, also what notifications and audit records carry).
static inline uint32_t cseccomp_arch_x86_64(void) { return SCMP_ARCH_X86_64; }
static inline uint32_t cseccomp_arch_x86(void) { return SCMP_ARCH_X86; }
