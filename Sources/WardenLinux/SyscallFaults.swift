// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

#if DEBUG
    import Synchronization
    import SystemPackage

    /// Debug-only fault injection at the `sys_*` seam, for the errors the kernel cannot be made to
    /// return on demand without disturbing the whole machine (ENOSPC from `inotify_add_watch` needs
    /// `fs.inotify.max_user_watches` exhausted for every process of the user). Release builds do
    /// not contain it.
    public enum SyscallFaults {
        struct Rule {
            var syscall: String
            var pathPrefix: [UInt8]
            var remainingSuccesses: Int
            var errno: Errno
        }

        private static let rules = Mutex<[Rule]>([])

        /// Makes `syscall` on paths starting with `pathPrefix` succeed `successes` more times, then
        /// fail with `errno` until `clear` is called.
        public static func fail(_ syscall: String, under pathPrefix: [UInt8], after successes: Int, with errno: Errno) {
            rules.withLock {
                $0.append(Rule(syscall: syscall, pathPrefix: pathPrefix, remainingSuccesses: successes, errno: errno))
            }
        }

        /// Removes every rule for paths starting with `pathPrefix`.
        public static func clear(under pathPrefix: [UInt8]) {
            rules.withLock { $0.removeAll { $0.pathPrefix == pathPrefix } }
        }

        static func injectedError(for syscall: String, path: [UInt8]) -> Errno? {
            rules.withLock { rules in
                guard let index = rules.firstIndex(where: { $0.syscall == syscall && path.starts(with: $0.pathPrefix) })
                else { return nil }
                if rules[index].remainingSuccesses > 0 {
                    rules[index].remainingSuccesses -= 1
                    return nil
                }
                return rules[index].errno
            }
        }
    }
#endif
