// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ServiceLifecycle
import WardenCore
import WardenStore

/// The store writer as a service: started first, stopped last, so every command the sensor
/// submitted before it stopped is committed before the process exits.
public struct StoreService: Service {
    public let writer: StoreWriter

    public init(writer: StoreWriter) { self.writer = writer }

    public func run() async throws {
        writer.start()
        try? await gracefulShutdown()
        await DedicatedThread.run(name: "warden-flush") { [writer] in writer.finish() }
    }
}
