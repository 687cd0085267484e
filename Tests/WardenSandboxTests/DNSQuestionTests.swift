// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Testing

@testable import WardenSandbox

@Suite struct DNSQuestionTests {
    /// A query: id, flags, one question, no other records, then `question`.
    func query(flags: [UInt8] = [0x01, 0x00], questions: UInt8 = 1, _ question: [UInt8]) -> [UInt8] {
        [0xab, 0xcd] + flags + [0, questions, 0, 0, 0, 0, 0, 0] + question
    }

    func labels(_ names: [String]) -> [UInt8] {
        names.flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) } + [0]
    }

    @Test func aQuerysQuestionIsRead() {
        let question = DNSQuestion(message: query(labels(["pool", "miner", "example"]) + [0, 1, 0, 1]))
        #expect(question?.name == "pool.miner.example" && question?.type == "A")
        #expect(DNSQuestion(message: query(labels(["c2", "example"]) + [0, 28, 0, 1]))?.type == "AAAA")
        #expect(DNSQuestion(message: query(labels(["x", "example"]) + [0, 16, 0, 1]))?.type == "TXT")
        #expect(DNSQuestion(message: query(labels(["x"]) + [0x12, 0x34, 0, 1]))?.type == "TYPE4660")
        #expect(DNSQuestion(message: query([0, 0, 2, 0, 1]))?.name == ".")
    }

    @Test func theNotFoundAnswerRepeatsTheQuestion() throws {
        // Two questions' worth of bytes and an additional record (EDNS): the answer repeats the
        // first question only, and says so.
        let first = labels(["c2", "example"]) + [0, 1, 0, 1]
        var message = query(flags: [0x01, 0x20], questions: 1, first + [0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0])
        message[11] = 1  // ARCOUNT
        let question = try #require(DNSQuestion(message: message))
        #expect(
            question.notFoundAnswer == [0xab, 0xcd, 0x81, 0x83, 0, 1, 0, 0, 0, 0, 0, 0] + first)
        // Recursion not desired: not claimed in the answer.
        let plain = try #require(DNSQuestion(message: query(flags: [0x00, 0x00], first)))
        #expect(plain.notFoundAnswer[2] == 0x80)
    }

    /// An A question answered with one record pointing at the question's name; any other with
    /// none, NOERROR.
    @Test func theAddressAnswerHoldsOneRecord() throws {
        let first = labels(["c2", "example"]) + [0, 1, 0, 1]
        let question = try #require(DNSQuestion(message: query(first)))
        #expect(question.isAddressQuestion)
        #expect(
            question.answer(address: [198, 18, 0, 7])
                == [0xab, 0xcd, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0] + first
                + [0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 0, 7])
        let aaaa = try #require(DNSQuestion(message: query(labels(["c2", "example"]) + [0, 28, 0, 1])))
        #expect(!aaaa.isAddressQuestion)
        #expect(
            aaaa.answer(address: nil) == [0xab, 0xcd, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0] + labels(["c2", "example"])
                + [0, 28, 0, 1])
        // A of another class (CHAOS) is no address question.
        #expect(DNSQuestion(message: query(labels(["version", "bind"]) + [0, 1, 0, 3]))?.isAddressQuestion == false)
    }

    @Test func bytesAQueryMayHoldAreEscaped() {
        let label: [UInt8] = [4, UInt8(ascii: "a"), UInt8(ascii: "."), 0x0a, 0xc3] + [0]
        #expect(DNSQuestion(message: query(label + [0, 1, 0, 1]))?.name == "a\\.\\010\\195")
    }

    @Test func whatIsNoQueryOrIsMalformedIsNotRead() {
        let question = labels(["c2", "example"]) + [0, 1, 0, 1]
        #expect(DNSQuestion(message: query(flags: [0x81, 0x80], question)) == nil)  // a response
        #expect(DNSQuestion(message: query(flags: [0x28, 0x00], question)) == nil)  // an update
        #expect(DNSQuestion(message: query(questions: 0, question)) == nil)
        #expect(DNSQuestion(message: Array(query(question).prefix(11))) == nil)
        #expect(DNSQuestion(message: query(labels(["c2", "example"]) + [0, 1])) == nil)  // no class
        #expect(DNSQuestion(message: query([3, 0x61, 0x62])) == nil)  // label cut short
        #expect(DNSQuestion(message: query([0xc0, 0x0c, 0, 1, 0, 1])) == nil)  // a pointer
        let long = [UInt8](repeating: 63, count: 1) + [UInt8](repeating: 0x61, count: 63)
        #expect(DNSQuestion(message: query(Array(repeating: long, count: 4).flatMap { $0 } + [0, 0, 1, 0, 1])) == nil)
    }
}
