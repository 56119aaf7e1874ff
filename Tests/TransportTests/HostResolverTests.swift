import Glibc
import Transport
import XCTest
import TestSupport

final class HostResolverTests: XCTestCase {
    /// Numeric hosts are parsed, never looked up; a name is not numeric.
    func testNumericHostsAreParsedAndNamesAreNot() {
        XCTAssertEqual(HostResolver.numeric("127.0.0.1", port: 6379)?.description, "127.0.0.1:6379")
        XCTAssertEqual(HostResolver.numeric("::1", port: 80)?.description, "[::1]:80")
        XCTAssertEqual(HostResolver.numeric("::1", port: 80)?.family, AF_INET6)
        XCTAssertNil(HostResolver.numeric("localhost", port: 80))
        XCTAssertNil(HostResolver.numeric("[::1]", port: 80), "brackets are URL syntax, not an address")
        XCTAssertNil(HostResolver.numeric("127.0.0.256", port: 80))
    }

    /// The system lookup answers `localhost` (from /etc/hosts) with the port in every address.
    func testSystemLookupOfLocalhost() throws {
        guard case .success(let all) = HostResolver.system("localhost", 6380) else { return XCTFail("localhost did not resolve") }
        XCTAssertFalse(all.isEmpty)
        XCTAssertEqual(Set(all.map(\.description)).count, all.count, "no duplicates")
        for a in all { XCTAssertTrue(["127.0.0.1:6380", "[::1]:6380"].contains(a.description), a.description) }
    }

    /// A name that cannot exist (RFC 6761 `.invalid`) fails with the resolver's reason.
    func testAnInvalidNameFailsWithAReason() {
        guard case .failure(let e) = HostResolver.system("no-such-host.invalid", 80) else { return XCTFail("resolved") }
        XCTAssertTrue("\(e)".hasPrefix("cannot resolve 'no-such-host.invalid': "), "\(e)")
    }

    /// `lookUp` runs the lookup on another thread and answers on the loop's.
    func testLookUpAnswersOnTheLoopThread() throws {
        let loop = try EventLoop(index: 0)
        loop.start(name: "resolver-test")
        defer { loop.stop(); loop.join() }
        let loopThread = Locked<pthread_t?>(nil)
        let ready = expectation(description: "loop thread known")
        loop.execute { loopThread.withLock { $0 = pthread_self() }; ready.fulfill() }
        wait(for: [ready], timeout: 5)
        let lookupThread = Locked<pthread_t?>(nil)
        let answered = expectation(description: "answered")
        let answer = Locked<(String, Bool)?>(nil)
        loop.execute {
            HostResolver.lookUp("a.test", port: 1, on: loop, using: { _, port in
                lookupThread.withLock { $0 = pthread_self() }
                return .success([HostResolver.numeric("10.0.0.1", port: port)!])
            }) { result in
                let onLoop = pthread_equal(pthread_self(), loopThread.withLock { $0! }) != 0
                answer.withLock { $0 = ((try? result.get())?.first?.description ?? "", onLoop) }
                answered.fulfill()
            }
        }
        wait(for: [answered], timeout: 5)
        XCTAssertEqual(answer.withLock { $0?.0 }, "10.0.0.1:1")
        XCTAssertEqual(answer.withLock { $0?.1 }, true, "the completion ran on the loop")
        let other = pthread_equal(lookupThread.withLock { $0! }, loopThread.withLock { $0! }) == 0
        XCTAssertTrue(other, "the lookup ran off the loop")
    }
}
