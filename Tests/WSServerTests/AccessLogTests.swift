import Glibc
import Logging
import WSServer
import XCTest

final class AccessLogTests: XCTestCase {
    let sample = AccessLogRecord(kind: .websocket, connection: 7, remoteAddress: "::1", remotePort: 50123,
                                 method: "GET", path: "/chat\"\n?x=1", status: 101, closeCode: 1001,
                                 bytesIn: 250, bytesOut: 129, durationMillis: 1234.56789,
                                 tlsVersion: "TLSv1.3", tlsCipher: "TLS_AES_128_GCM_SHA256",
                                 subprotocol: "chat.v1", compression: true, userAgent: "Mozilla/5.0 (X11) \u{1}")

    func testJSONLineHasStableKeysInOrderAndEscapes() {
        let line = sample.formatted(.json, timestamp: "2026-12-01T20:18:01.123Z")
        XCTAssertEqual(line, #"{"ts":"2026-12-01T20:18:01.123Z","level":"info","msg":"access","kind":"websocket","conn":7,"#
            + #""remote_addr":"::1","remote_port":50123,"method":"GET","path":"/chat\"\n?x=1","status":101,"#
            + #""close_code":1001,"bytes_in":250,"bytes_out":129,"duration_ms":1234.568,"tls_version":"TLSv1.3","#
            + #""tls_cipher":"TLS_AES_128_GCM_SHA256","subprotocol":"chat.v1","compression":true,"#
            + #""user_agent":"Mozilla/5.0 (X11) \u0001"}"#)
        XCTAssertFalse(line.contains("\n"))
    }

    func testEmptyFieldsAreNullOrDash() {
        let r = AccessLogRecord(kind: .http, method: "GET", path: "/", status: 404)
        let json = r.formatted(.json, timestamp: "T")
        XCTAssertTrue(json.contains(#""close_code":null"#))
        XCTAssertTrue(json.contains(#""user_agent":null"#))
        let text = r.formatted(.text, timestamp: "T")
        XCTAssertTrue(text.hasPrefix("T info access kind=http conn=0 remote_addr=- "), text)
        XCTAssertTrue(text.contains(" status=404 close_code=- "), text)
    }

    func testTextQuotesValuesThatCouldForgeFields() {
        let text = sample.formatted(.text, timestamp: "T")
        XCTAssertTrue(text.contains(#"user_agent="Mozilla/5.0 (X11) \u0001""#), text)
        XCTAssertTrue(text.contains(#"path="/chat\"\n?x=1""#), text)
        XCTAssertFalse(text.contains("\n"))
    }

    /// 1795000000 is 2026-11-18T11:06:40Z (`date -u -d @1795000000`).
    func testTimestampIsUTCWithMilliseconds() {
        XCTAssertEqual(LogTimestamp.format(seconds: 0, millis: 5), "1970-01-01T00:00:00.005Z")
        XCTAssertEqual(LogTimestamp.format(seconds: 1_795_000_000, millis: 999), "2026-11-18T11:06:40.999Z")
        let now = LogTimestamp.now()
        XCTAssertNotNil(now.range(of: #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"#, options: .regularExpression), now)
    }

    func testSplitHostPort() {
        XCTAssertTrue(AccessLogRecord.split(hostPort: "127.0.0.1:443") == ("127.0.0.1", 443))
        XCTAssertTrue(AccessLogRecord.split(hostPort: "[::1]:8443") == ("::1", 8443))
        XCTAssertTrue(AccessLogRecord.split(hostPort: "?") == ("?", 0))
        // Forms an X-Forwarded-For client or the socket gives: with and without a port.
        let cases: [(String, String, Int)] = [
            ("1.2.3.4", "1.2.3.4", 0), ("1.2.3.4:5", "1.2.3.4", 5), ("[::1]:5", "::1", 5), ("::1", "::1", 0),
            ("2001:db8::1", "2001:db8::1", 0), ("[2001:db8::1]", "2001:db8::1", 0), ("2001:db8::1:80", "2001:db8::1:80", 0),
            ("", "", 0), ("junk", "junk", 0), ("junk:x", "junk:x", 0), ("1.2.3.4:99999", "1.2.3.4:99999", 0),
            ("[::1]:", "[::1]:", 0), ("[::1", "[::1", 0), (":5", ":5", 0),
        ]
        for (text, host, port) in cases {
            let got = AccessLogRecord.split(hostPort: text)
            XCTAssertTrue(got == (host, port), "\(text) → \(got), want \(host) \(port)")
        }
    }

    func testQueryRedaction() {
        let r = QueryRedaction.standard
        XCTAssertEqual(r.apply("/chat"), "/chat")
        XCTAssertEqual(r.apply("/chat?"), "/chat?")
        XCTAssertEqual(r.apply("/c?room=a&token=x%20y&TOKEN=z&token=&token&tok=1"), "/c?room=a&token=***&TOKEN=***&token=&token&tok=1")
        XCTAssertEqual(r.apply("/c?%74oken=abc&access%5Ftoken=d&api+key=e"), "/c?%74oken=***&access%5Ftoken=***&api+key=e")
        XCTAssertEqual(r.apply("/c?a=1&&sig=2=3&sid=s#f"), "/c?a=1&&sig=***&sid=***")
        XCTAssertEqual(QueryRedaction(names: []).apply("/c?token=1"), "/c?token=1")
        XCTAssertEqual(QueryRedaction(names: ["Room"]).apply("/c?room=1&token=2"), "/c?room=***&token=2")
    }

    /// logrotate moves the file away, then SIGHUP → reopen: new lines go to a new file at the
    /// same path, none are lost in the old one.
    func testReopenAfterRotation() throws {
        let dir = NSTemporaryDirectoryPath() + "accesslog-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        XCTAssertEqual(mkdir(dir, 0o700), 0)
        let path = dir + "/access.log"
        let log = try AccessLog(.file(path), format: .json)
        log.write(AccessLogRecord(kind: .http, path: "/one", status: 200))
        XCTAssertEqual(rename(path, path + ".1"), 0)
        log.write(AccessLogRecord(kind: .http, path: "/two", status: 200))   // still the old file
        try log.reopen()
        log.write(AccessLogRecord(kind: .http, path: "/three", status: 200))
        let old = try read(path + ".1"), fresh = try read(path)
        XCTAssertEqual(old.split(separator: "\n").count, 2)
        XCTAssertTrue(old.contains("\"/one\"") && old.contains("\"/two\""))
        XCTAssertEqual(fresh.split(separator: "\n").count, 1)
        XCTAssertTrue(fresh.contains("\"/three\""))
    }

    func testUnopenableFileIsOneLineError() {
        XCTAssertThrowsError(try AccessLog(.file("/nonexistent-dir/access.log"), format: .text)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("/nonexistent-dir/access.log") && !text.contains("\n"), text)
        }
        XCTAssertNil(try AccessLog.parse("off", format: .text))
    }

    func testLogLineHandlerJSONAndText() {
        let json = LogLineHandler(label: "wss-server", format: .json)
        XCTAssertEqual(json.render(level: .warning, message: "limit \"x\"", metadata: ["conn": "3", "a": "b"], timestamp: "T"),
                       #"{"ts":"T","level":"warning","label":"wss-server","msg":"limit \"x\"","a":"b","conn":"3"}"#)
        let text = LogLineHandler(label: "wss-server", format: .text)
        XCTAssertEqual(text.render(level: .info, message: "listening", metadata: ["conn": "3"], timestamp: "T"),
                       "T info wss-server: listening conn=3")
        XCTAssertEqual(text.render(level: .info, message: "evil\nline", metadata: [:], timestamp: "T"),
                       #"T info wss-server: "evil\nline""#)
    }

    private func read(_ path: String) throws -> String {
        guard let f = fopen(path, "r") else { throw POSIXError(.ENOENT) }
        defer { fclose(f) }
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }
}

private func NSTemporaryDirectoryPath() -> String { "/tmp/" }
