import COpenSSL
import Glibc
@testable import Transport
import XCTest

/// Session-ticket keys: rotation (issued under the current period, accepted under the
/// previous one and renewed, refused after), and a cluster sharing one secret file.
final class TLSTicketKeysTests: XCTestCase {
    /// Runs the ticket-key callback logic once; returns its result and the key name used.
    func crypt(_ keys: TLSTicketKeys, encrypt: Bool, name: [UInt8], at now: UInt64) -> (Int32, [UInt8]) {
        var name = name, iv = [UInt8](repeating: 7, count: 16)
        let cipher = EVP_CIPHER_CTX_new()!
        let hmac = EVP_MAC_fetch(nil, "HMAC", nil)
        let mac = EVP_MAC_CTX_new(hmac)!
        defer { EVP_CIPHER_CTX_free(cipher); EVP_MAC_CTX_free(mac); EVP_MAC_free(hmac) }
        let r = keys.crypt(name: &name, iv: &iv, cipher: cipher, mac: mac, encrypt: encrypt, now: now)
        return (r, name)
    }

    func testRotationAcceptsThePreviousPeriodOnly() {
        let keys = TLSTicketKeys(rotationSeconds: 100)
        let (made, name) = crypt(keys, encrypt: true, name: [UInt8](repeating: 0, count: 16), at: 1_000)
        XCTAssertEqual(made, 1)
        XCTAssertEqual(crypt(keys, encrypt: false, name: name, at: 1_050).0, 1, "same period: accepted")
        XCTAssertEqual(crypt(keys, encrypt: false, name: name, at: 1_150).0, 2, "next period: accepted, renewed")
        XCTAssertEqual(crypt(keys, encrypt: false, name: name, at: 1_250).0, 0, "two periods on: full handshake")
        XCTAssertNotEqual(crypt(keys, encrypt: true, name: name, at: 1_150).1, name, "a new period, a new key name")
    }

    func testClusterSharesTicketsThroughOneSecretFile() throws {
        let path = NSTemporaryDirectory() + "ticket-\(getpid()).key"
        defer { unlink(path) }
        var secret = [UInt8](repeating: 0, count: 32)
        XCTAssertEqual(RAND_bytes(&secret, 32), 1)
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(secret),
                                                     attributes: [.posixPermissions: 0o600]))
        let a = try TLSTicketKeys(secretFile: path), b = try TLSTicketKeys(secretFile: path)
        let (_, name) = crypt(a, encrypt: true, name: [UInt8](repeating: 0, count: 16), at: 7_200)
        XCTAssertEqual(crypt(b, encrypt: false, name: name, at: 7_300).0, 1, "server b accepts server a's ticket")
        XCTAssertEqual(crypt(TLSTicketKeys(), encrypt: false, name: name, at: 7_300).0, 0, "another secret does not")
        XCTAssertThrowsError(try TLSTicketKeys(secretFile: path + ".missing"))
    }

    /// The secret file must not be readable (nor writable) by group or others, and must be a
    /// regular file of at least 32 bytes; each refusal names the file and the reason.
    func testSecretFileRulesAreEnforced() throws {
        let path = NSTemporaryDirectory() + "ticket-perm-\(getpid()).key"
        defer { unlink(path) }
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(repeating: 9, count: 32),
                                                     attributes: [.posixPermissions: 0o600]))
        XCTAssertNoThrow(try TLSTicketKeys(secretFile: path))
        for mode: mode_t in [0o640, 0o604, 0o620, 0o644] {
            XCTAssertEqual(chmod(path, mode), 0)
            XCTAssertThrowsError(try TLSTicketKeys(secretFile: path)) {
                XCTAssertTrue("\($0)".contains("accessible by group or others (mode \(String(mode, radix: 8)))"), "\($0)")
            }
        }
        XCTAssertEqual(chmod(path, 0o400), 0)
        XCTAssertNoThrow(try TLSTicketKeys(secretFile: path), "read-only for the owner is fine")
        XCTAssertThrowsError(try TLSTicketKeys(secretFile: NSTemporaryDirectory())) {
            XCTAssertTrue("\($0)".contains("not a regular file"), "\($0)")
        }
        unlink(path)
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(repeating: 9, count: 31),
                                                     attributes: [.posixPermissions: 0o600]))
        XCTAssertThrowsError(try TLSTicketKeys(secretFile: path)) { XCTAssertTrue("\($0)".contains("shorter than 32"), "\($0)") }
    }
}
