// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Logging
import ServiceLifecycle
import UnixSignals
import WardenCore
import WardenLinux
import WardenSensors
import WardenStore

/// The composition root: the only place that knows every concrete type.
public enum Agent {
    /// The services of `shmwarden run`, in start order (the store first, so it stops last).
    public struct Services: Sendable {
        public var store: StoreService
        public var sensor: SensorService
        public var database: EvidenceDatabase

        public var all: [any Service] { [store, sensor] }
    }

    /// Builds the database, the store writer and the sensor for `configuration`.
    public static func buildServices(configuration: AgentConfiguration, logger: Logger) throws -> Services {
        try configuration.stateDirectory.prepare()
        let database = try EvidenceDatabase(path: configuration.stateDirectory.databasePath)
        var observer: StoreWriter.CommitObserver?
        if let path = configuration.commitLogPath {
            let log = try CommitLog(path: path)
            observer = { written, at in log.append(written, at: at) }
        }
        let writer = StoreWriter(
            database: database, clock: { sys_monotonicNanoseconds() }, observer: observer,
            onError: { error in logger.error("store error", metadata: ["error": "\(error)"]) })
        let sensor = SensorService(
            configuration: configuration.sensorConfiguration, writer: writer, logger: logger)
        return Services(store: StoreService(writer: writer), sensor: sensor, database: database)
    }

    /// `shmwarden run`: serves until SIGTERM or SIGINT, then shuts down in reverse order and
    /// flushes the store.
    public static func run(configuration: AgentConfiguration, logger: Logger) async throws {
        sys_raiseOpenFileLimit()
        umask(0o077)
        let services = try buildServices(configuration: configuration, logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: services.all.map {
                    .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup,
                          failureTerminationBehavior: .gracefullyShutdownGroup)
                },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        logger.notice(
            "shmwarden running",
            metadata: ["state.dir": "\(configuration.stateDirectory.path)", "pid": "\(getpid())"])
        try await group.run()
        logger.notice("shmwarden stopped", metadata: ["files.recorded": "\(services.sensor.metrics[.filesRecorded])"])
    }
}

/// Appends `<monotonic ns>\t<path>` per committed record: the benchmark's view of commit time.
final class CommitLog: Sendable {
    private let handle: FileHandle

    init(path: String) throws {
        FileManager.default.createFile(atPath: path, contents: nil)
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: path])
        }
        handle.seekToEndOfFile()
        self.handle = handle
    }

    func append(_ paths: [PathBytes], at monotonicNanos: Int64) {
        guard !paths.isEmpty else { return }
        var text = ""
        for path in paths { text += "\(monotonicNanos)\t\(path.displayString)\n" }
        handle.write(Data(text.utf8))
    }
}

extension Agent {
    /// `shmwarden scan`: one pass over the watched roots, recorded through the same pipeline.
    public static func scan(configuration: AgentConfiguration, logger: Logger) throws -> ScanSummary {
        umask(0o077)
        try configuration.stateDirectory.prepare()
        let database = try EvidenceDatabase(path: configuration.stateDirectory.databasePath)
        return try Scanner.scan(configuration: configuration.sensorConfiguration, database: database, logger: logger)
    }
}

extension Agent {
    /// The SHA-256 of a file as the sensor computes it (no size cap), for benchmarks.
    public static func sha256(ofFile path: String) throws -> String {
        let fd = try sys_open(Array(path.utf8), flags: O_RDONLY)
        defer { sys_close(fd) }
        return try FileHasher().digestOf(fd)
    }
}
