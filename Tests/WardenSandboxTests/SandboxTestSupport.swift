// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Crypto
import Foundation
import Logging

let quietLogger = Logger(label: "shmwarden-sandbox-tests", factory: { _ in SwiftLogNoOpLogHandler() })

func sha256Hex(_ data: Data) -> String {
    SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
}
