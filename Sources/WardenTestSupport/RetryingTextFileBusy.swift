// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc

/// Starts a program again while its start fails with ETXTBSY ("Text file busy"). A file a test
/// has just written can still be open for writing in a child that another test, running at the
/// same time, forked meanwhile (a child holds a copy of every descriptor until it execs), and
/// exec refuses a file that is open for writing. Any other failure is thrown at once.
public func retryingTextFileBusy<T>(_ start: () throws -> T) throws -> T {
    func isTextFileBusy(_ error: NSError) -> Bool {
        if error.domain == NSPOSIXErrorDomain && error.code == ETXTBSY { return true }
        guard let underlying = error.userInfo[NSUnderlyingErrorKey] as? NSError else { return false }
        return isTextFileBusy(underlying)
    }
    for _ in 0..<100 {
        do {
            return try start()
        } catch let error as NSError where isTextFileBusy(error) {
            usleep(10_000)
        }
    }
    return try start()
}
