// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Logging
import ServiceLifecycle
import UnixSignals
import WardenCore
import WardenResponse

/// The response thread as a service; SIGHUP reloads the policy, keeping the last good one when
/// the new one is invalid, and then whatever else `onReload` reloads (the intake's certificates).
public struct ResponderService: Service {
    public let responder: Responder
    /// The policy every part of the agent reads; a reload replaces it.
    public let policy: SharedPolicy
    let policyPath: String?
    let logger: Logger
    /// Called once SIGHUP reloads the policy (the agent announces itself then: a reload sent
    /// earlier would find no one listening).
    var onReloadArmed: (@Sendable () -> Void)?
    /// Runs at each SIGHUP after the policy.
    let onReload: @Sendable () -> Void

    init(
        responder: Responder, policy: SharedPolicy, policyPath: String?, logger: Logger,
        onReload: @escaping @Sendable () -> Void = {}
    ) {
        self.onReload = onReload
        self.responder = responder
        self.policy = policy
        self.policyPath = policyPath
        self.logger = logger
    }

    public func run() async throws {
        async let reloads: Void = reloadOnHangup()
        async let work: Void = responder.run()
        try? await gracefulShutdown()
        responder.finish()
        await work
        _ = await reloads
    }

    private func reloadOnHangup() async {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        onReloadArmed?()
        for await _ in hangups.cancelOnGracefulShutdown() {
            defer { onReload() }
            guard let policyPath else {
                logger.notice("SIGHUP: no --policy was given, nothing to reload")
                continue
            }
            switch PolicyLoader.load(policyPath) {
            case .success(let policy):
                self.policy.replace(policy)
                logger.notice(
                    "policy reloaded",
                    metadata: [
                        "policy.mode": "\(policy.mode.rawValue)", "policy.rules": "\(policy.rules.count)",
                        "policy.files": "\(policy.sources.joined(separator: ","))",
                    ])
            case .failure(let errors):
                logger.error(
                    "policy reload rejected; keeping the last good policy",
                    metadata: ["errors": "\(errors.description)"])
            }
        }
    }
}
