#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Logging

/// The Redis password from `--backplane-password-file` or `WSS_BACKPLANE_PASSWORD`, so that
/// it is not on the command line (where `ps` and /proc/PID/cmdline show it to every user).
/// The file's bytes are wiped once read and the variable's value is zeroed in place (so
/// /proc/PID/environ no longer shows it) and removed from the environment;
/// the password itself stays in memory, since every reconnect logs in again.
enum BackplanePassword {
    static let variable = "WSS_BACKPLANE_PASSWORD"
    static let maxBytes = 4096

    static func read(file: String?, urlHasOne: Bool, logger: Logger) throws -> String? {
        var fromEnv: String?
        if let value = getenv(variable) {
            fromEnv = String(cString: value)
            explicit_bzero(value, strlen(value))  // in place: gone from /proc/PID/environ too
            unsetenv(variable)
        }
        let sources = [urlHasOne ? "the --backplane URL" : nil, file.map { _ in "--backplane-password-file" },
                       fromEnv.map { _ in variable }].compactMap { $0 }
        guard sources.count <= 1 else {
            throw ValidationError("the Redis password is given twice (\(sources.joined(separator: " and "))): give it once")
        }
        if let fromEnv {
            guard !fromEnv.isEmpty else { throw ValidationError("\(variable) is set but empty") }
            return fromEnv
        }
        guard let file else { return nil }
        return try readFile(file, logger: logger)
    }

    private static func readFile(_ path: String, logger: Logger) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw ValidationError("--backplane-password-file: cannot open \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) == 0, st.st_mode & 0o077 != 0 {
            logger.warning("--backplane-password-file \(path) is readable by group or others (mode \(String(st.st_mode & 0o777, radix: 8))); chmod 600 it")
        }
        var bytes = [UInt8](repeating: 0, count: maxBytes + 2)
        defer { bytes.withUnsafeMutableBytes { if let b = $0.baseAddress { explicit_bzero(b, $0.count) } } }
        var count = 0
        while count < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw ValidationError("--backplane-password-file: cannot read \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            count += n
        }
        if count > 0 && bytes[count - 1] == 0x0A { count -= 1 }
        if count > 0 && bytes[count - 1] == 0x0D { count -= 1 }
        guard count > 0 else { throw ValidationError("--backplane-password-file: \(path) is empty") }
        guard count <= maxBytes else { throw ValidationError("--backplane-password-file: \(path) is longer than \(maxBytes) bytes") }
        guard !bytes[0..<count].contains(0x0A), !bytes[0..<count].contains(0) else {
            throw ValidationError("--backplane-password-file: \(path) must hold one line (the password)")
        }
        guard let password = String(validating: bytes[0..<count], as: UTF8.self) else {
            throw ValidationError("--backplane-password-file: \(path) is not UTF-8")
        }
        return password
    }
}
