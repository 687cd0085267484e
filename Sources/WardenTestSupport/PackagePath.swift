// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation

/// `relative` inside this package's checkout, found from the calling test file's own path
/// (`<package>/Tests/<Target>/<File>.swift`): the built binaries (`.build/debug/shmwarden`) and
/// shipped files (`dist/…`) the tests drive.
public func packagePath(_ relative: String, calledFrom file: String = #filePath) -> String {
    var url = URL(fileURLWithPath: file)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.appendingPathComponent(relative).path
}
