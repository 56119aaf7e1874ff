import WebSocket
import WSServer
import XCTest

/// Configuration values out of range are refused with the setting's name, never clamped;
/// derived limits follow what they derive from.
final class ServerConfigurationTests: XCTestCase {
    func refusal(_ change: (inout ServerConfiguration) -> Void) -> ConfigurationError? {
        var c = ServerConfiguration()
        change(&c)
        do {
            _ = try Server(configuration: c)
            return nil
        } catch let e as ConfigurationError {
            return e
        } catch {
            XCTFail("unexpected \(error)")
            return nil
        }
    }

    func testDefaultsAreValid() throws {
        XCTAssertNoThrow(try ServerConfiguration.defaults.validate())
    }

    func testTheBackplaneWaitDefaultsToFiveSeconds() {
        XCTAssertEqual(ServerConfiguration.defaults.backplaneReadyTimeout, 5, "twice RedisBackplane's worst first attempt")
    }

    func testOutOfRangeValuesAreRefusedByName() {
        XCTAssertEqual(refusal { $0.maxBackpressure = 3 << 30 }?.setting, "maxBackpressure", "over 2 GiB")
        XCTAssertEqual(refusal { $0.highWaterMark = 4 << 30; $0.maxBackpressure = 8 << 30 }?.setting, "highWaterMark")
        XCTAssertEqual(refusal { $0.maxBackpressure = 1 << 19 }?.setting, "maxBackpressure", "below the high-water mark")
        XCTAssertEqual(refusal { $0.threads = 0 }?.setting, "threads")
        XCTAssertEqual(refusal { $0.port = 70_000 }?.setting, "port")
        XCTAssertEqual(refusal { $0.idleTimeout = .nan }?.setting, "idleTimeout")
        XCTAssertEqual(refusal { $0.closeTimeout = -1 }?.setting, "closeTimeout")
        XCTAssertEqual(refusal { $0.handshakeTimeout = 1e300 }?.setting, "handshakeTimeout", "would overflow the ms clock")
        XCTAssertEqual(refusal { $0.backplaneReadyTimeout = -1 }?.setting, "backplaneReadyTimeout")
        XCTAssertEqual(refusal { $0.backplaneReadyTimeout = 301 }?.setting, "backplaneReadyTimeout", "over 5 minutes")
        XCTAssertEqual(refusal { $0.backplaneReadyTimeout = .infinity }?.setting, "backplaneReadyTimeout")
        XCTAssertNil(refusal { $0.backplaneReadyTimeout = 0 }, "0: do not wait")
        let e = refusal { $0.maxBackpressure = 3 << 30 }
        XCTAssertTrue(e?.description.contains("maxBackpressure must be") == true, e?.description ?? "")
    }

    func testFrameLimitFollowsAMessageLimitRaisedLater() {
        var c = ServerConfiguration()
        c.limits.maxMessageSize = 64 << 20
        XCTAssertEqual(c.limits.maxFrameSize, 64 << 20)
    }
}
