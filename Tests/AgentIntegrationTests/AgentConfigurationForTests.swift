// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import WardenDaemon
import WardenSensors

enum AgentConfigurationForTests {
    static func make(state: String, watch: [String], discovery: TmpfsDiscovery = .none) -> AgentConfiguration {
        AgentConfiguration(stateDirectory: StateDirectory(flag: state), watchPaths: watch, discovery: discovery)
    }
}
