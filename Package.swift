// swift-tools-version: 6.2
// shmwarden: a Linux host agent that captures executables dropped on tmpfs and answers Falco alerts.

import PackageDescription

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "shmwarden",
    products: [
        .executable(name: "shmwarden", targets: ["shmwarden"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // The only hand-written C: what Swift cannot call (variadic calls, macros, missing headers).
        .target(name: "CWardenLinux"),
        // The store's C: the variadic sqlite3_db_config.
        .target(name: "CWardenSQLite", linkerSettings: [.linkedLibrary("sqlite3")]),
        // libseccomp, Debian's libseccomp-dev: the sandbox's filter and its user notifications.
        .systemLibrary(
            name: "CSeccomp",
            pkgConfig: "libseccomp",
            providers: [.apt(["libseccomp-dev"])]
        ),
        // libyara, Debian's libyara-dev: the YARA rules every capture is scanned with.
        .systemLibrary(
            name: "CYara",
            pkgConfig: "yara",
            providers: [.apt(["libyara-dev"])]
        ),
        .target(
            name: "WardenCore",
            dependencies: [.product(name: "Yams", package: "Yams")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "WardenLinux",
            dependencies: [
                "CWardenLinux", "CSeccomp",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "WardenStore",
            dependencies: [
                "WardenCore", "WardenLinux", "CWardenSQLite",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            swiftSettings: strictSettings
        ),
        // YARA: rule sets compiled from files, scans of captures, their verdicts.
        .target(
            name: "WardenYara",
            dependencies: [
                "CYara", "WardenCore", "WardenStore", "WardenLinux",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "WardenSensors",
            dependencies: [
                "WardenCore", "WardenStore", "WardenLinux", "WardenYara",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "WardenIntake",
            dependencies: [
                "WardenCore", "WardenStore", "WardenLinux",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // The sandbox: the jail, its seccomp filter and observer, the stand-in network.
        .target(
            name: "WardenSandbox",
            dependencies: [
                "WardenCore", "WardenStore", "WardenLinux",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "WardenResponse",
            dependencies: [
                "WardenCore", "WardenStore", "WardenLinux", "WardenSandbox", "WardenYara",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "WardenHTTP",
            dependencies: [
                "WardenCore", "WardenStore", "WardenIntake",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // Delivery of the outbox's events to Falcosidekick (or any Falco-JSON receiver).
        .target(
            name: "WardenFleet",
            dependencies: [
                "WardenCore", "WardenStore", "WardenLinux",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "WardenDaemon",
            dependencies: [
                "WardenCore", "WardenStore", "WardenSensors", "WardenLinux", "WardenIntake", "WardenHTTP",
                "WardenResponse", "WardenSandbox", "WardenFleet", "WardenYara",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "shmwarden",
            dependencies: [
                "WardenDaemon", "WardenCore", "WardenSensors", "WardenStore", "WardenIntake", "WardenHTTP",
                "WardenResponse", "WardenSandbox", "WardenLinux", "WardenFleet", "WardenYara",
                .product(name: "Yams", package: "Yams"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // The benchmarks' baselines and probes (`scripts/bench-*`); not part of what is installed.
        .executableTarget(
            name: "shmwarden-bench",
            dependencies: [
                "WardenCore", "WardenDaemon", "WardenLinux", "WardenSandbox", "WardenSensors", "WardenStore",
                "WardenFleet",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // The containment tests' helper: tries one forbidden thing inside the sandbox.
        // Linked with the Swift runtime statically: it must run inside a jail that has only /usr.
        .executableTarget(name: "sandbox-probe", linkerSettings: [.unsafeFlags(["-static-stdlib"])]),
        // The fileless-capture tests' helper (C: fexecve, execveat, memfd mappings), never installed.
        .executableTarget(name: "fileless-probe"),
        // The hostile-input parsers as fuzz targets; `shmwarden-fuzz` is libFuzzer's front end
        // (scripts/fuzz builds it with -sanitize=fuzzer) or, built plainly, a corpus replayer.
        .target(name: "WardenFuzzing", dependencies: ["WardenCore", "WardenLinux"], swiftSettings: strictSettings),
        .executableTarget(
            name: "shmwarden-fuzz", dependencies: ["WardenFuzzing"],
            swiftSettings: strictSettings + [.unsafeFlags(["-parse-as-library"])]),
        // Real tmpfs mounts and state directories for the test targets; never linked into shmwarden.
        .target(name: "WardenTestSupport", swiftSettings: strictSettings),
        .testTarget(
            name: "WardenCoreTests",
            dependencies: ["WardenCore", "WardenTestSupport", .product(name: "Yams", package: "Yams")],
            exclude: ["Golden"]
        ),
        .testTarget(
            name: "WardenIntakeTests",
            dependencies: [
                "WardenIntake", "WardenStore", "WardenCore", "WardenTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "WardenLinuxTests", dependencies: ["WardenLinux"]),
        .testTarget(
            name: "WardenYaraTests",
            dependencies: [
                "WardenYara", "WardenCore", "WardenLinux", "WardenTestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .testTarget(name: "WardenFuzzingTests", dependencies: ["WardenFuzzing", "WardenTestSupport"]),
        .testTarget(
            name: "WardenSandboxTests",
            dependencies: [
                "WardenSandbox", "WardenStore", "WardenCore", "WardenLinux", "WardenTestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "WardenStoreTests",
            dependencies: ["WardenStore", "WardenCore", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .testTarget(
            name: "WardenResponseTests",
            dependencies: [
                "WardenResponse", "WardenSandbox", "WardenStore", "WardenCore", "WardenLinux", "WardenTestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            // The whole agent: its real services in a real ServiceGroup, and the command line.
            name: "AgentIntegrationTests",
            dependencies: [
                "WardenSensors", "WardenStore", "WardenCore", "WardenLinux", "WardenDaemon", "WardenHTTP",
                "WardenIntake", "WardenFleet", "WardenYara",
                "WardenTestSupport", "WardenResponse", "WardenSandbox",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
    ]
)
