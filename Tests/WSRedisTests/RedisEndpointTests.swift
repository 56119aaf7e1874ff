import WSRedis
import XCTest

final class RedisEndpointTests: XCTestCase {
    func testAcceptedForms() throws {
        XCTAssertEqual(try RedisEndpoint(url: "redis://127.0.0.1"), RedisEndpoint(host: "127.0.0.1"))
        XCTAssertEqual(try RedisEndpoint(url: "redis://cache:6380/3"), RedisEndpoint(host: "cache", port: 6380, database: 3))
        XCTAssertEqual(try RedisEndpoint(url: "redis://:s3cr:t@h:1"), RedisEndpoint(host: "h", port: 1, password: "s3cr:t"))
        XCTAssertEqual(try RedisEndpoint(url: "redis://bob:pw@h:2/"), RedisEndpoint(host: "h", port: 2, user: "bob", password: "pw"))
        XCTAssertEqual(try RedisEndpoint(url: "redis://[::1]:7000"), RedisEndpoint(host: "::1", port: 7000))
        XCTAssertEqual(try RedisEndpoint(url: "redis://[::1]"), RedisEndpoint(host: "::1"))
    }

    func testRejectedFormsSayWhyAndNeverShowThePassword() {
        let cases = [
            ("http://h", "must start with redis://"),
            ("rediss://h", "TLS) is not supported"),
            ("redis://", "no host"),
            ("redis://h:0", "port '0' must be 1–65535"),
            ("redis://h:99999", "must be 1–65535"),
            ("redis://h:x", "port 'x'"),
            ("redis://h/db1", "database 'db1' is not a number"),
            ("redis://secret@h", "credentials must be"),
            ("redis://[::1", "unclosed '['"),
            ("redis://:hunter2@h:0", "port"),
        ]
        for (url, why) in cases {
            XCTAssertThrowsError(try RedisEndpoint(url: url), url) { error in
                XCTAssertTrue("\(error)".contains(why), "\(url): \(error)")
                XCTAssertFalse("\(error)".contains("hunter2"), "password leaked: \(error)")
            }
        }
    }

    func testDescriptionHidesThePassword() throws {
        XCTAssertEqual("\(try RedisEndpoint(url: "redis://:hunter2@h:1/2"))", "redis://:***@h:1/2")
    }
}
