/// What `body` returns, or `CancellationError` after `seconds` (a test that waits for a
/// message must not hang the suite).
public func within<T: Sendable>(_ seconds: Double, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask { try await Task.sleep(for: .seconds(seconds)); throw CancellationError() }
        let first = try await group.next()!
        group.cancelAll()
        return first
    }
}
