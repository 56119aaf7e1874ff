#if canImport(Glibc)
import Glibc
#endif

/// A value behind a `pthread_mutex_t`. We use it instead of the standard library's `Mutex`,
/// which on Linux hands a contended lock over inside the kernel (priority-inheritance
/// futexes): ThreadSanitizer cannot see that hand-over and then reports races that are not
/// there (CI runs every test under TSan). pthread mutexes are instrumented. Uncontended cost
/// is the same: one atomic each way.
public final class Locked<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    public init(_ value: Value) {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        self.value = value
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with exclusive access to the value.
    @inline(__always)
    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
