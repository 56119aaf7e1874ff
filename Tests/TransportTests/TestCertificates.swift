import Foundation

/// A CA and localhost certificate made by `certs/generate.sh` (the same path as `make certs`)
/// in a temporary directory, once per test process.
enum TestCertificates {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let dir: String = {
        let dir = NSTemporaryDirectory() + "wss-transport-tests-\(getpid())"
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
