import COpenSSLTestExit
import XCTest

/// The test binary's OpenSSL set-up that keeps LeakSanitizer's exit check clean (see
/// Tests/COpenSSLTestExit/no_atexit.c and NOTES-lsan.md).
final class OpenSSLExitTests: XCTestCase {
    /// The load-time initialisation without the atexit cleanup ran and succeeded. If the
    /// target stopped being linked into the test binary (its constructor gone), libcrypto's
    /// OPENSSL_cleanup would run at exit again and orphan the error state of threads ending
    /// after it.
    func testOpenSSLWasInitialisedWithoutAtexitCleanupAtLoad() {
        XCTAssertEqual(wss_test_openssl_no_atexit(), 1)
    }
}
