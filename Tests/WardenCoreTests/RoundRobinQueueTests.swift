// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Testing
import WardenCore

@Suite struct RoundRobinQueueTests {
    /// A flood from one owner waits behind its own items: another owner's item is served second.
    @Test func ownersAreServedInTurn() {
        var queue = RoundRobinQueue<Int, String>(perOwnerLimit: 100, totalLimit: 1000)
        var accepted = 0
        for index in 0..<50 where queue.append("flood-\(index)", owner: 1000) { accepted += 1 }
        let victim = queue.append("victim", owner: 0)
        #expect(accepted == 50 && victim)
        #expect(queue.next() == "flood-0")
        #expect(queue.next() == "victim")
        #expect(queue.next() == "flood-1")
        #expect(queue.count == 48)
    }

    @Test func eachOwnerHasAShareAndTheWholeALimit() {
        var queue = RoundRobinQueue<Int, Int>(perOwnerLimit: 2, totalLimit: 3)
        let first = [queue.append(1, owner: 7), queue.append(2, owner: 7)]
        let pastShare = queue.append(3, owner: 7)
        let other = queue.append(4, owner: 8)
        let pastWhole = queue.append(5, owner: 9)
        #expect(first == [true, true] && !pastShare && other && !pastWhole)
        let rest = queue.removeAll()
        #expect(Set(rest) == [1, 2, 4] && queue.isEmpty && queue.next() == nil)
    }
}
