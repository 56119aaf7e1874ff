import Foundation

/// A CA and localhost certificate made by `certs/generate.sh` (the same path as `make certs`)
/// in a temporary directory, once per test process: ca.pem, cert.pem, key.pem (and ca.key).
/// Shared by the test targets that need TLS material (TransportTests, WSServerTests).
public enum TestCertificates {
    public static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    public static let dir: String = {
        let dir = NSTemporaryDirectory() + "wss-tests-certs-\(getpid())"
        let p = Process()
        p.executableURL = repo.appendingPathComponent("certs/generate.sh")
        p.arguments = [dir]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try? p.run()
        p.waitUntilExit()
        return dir
    }()
}
