// swift-tools-version:6.0
// wss-server: a secure WebSocket server, library and tools for Linux.
// Licensed under the Apache License, Version 2.0 (Apache-2.0); see LICENSE.
import PackageDescription

let package = Package(
    name: "wss-server",
    products: [
        .library(name: "WSServer", targets: ["WSServer"]),
        .library(name: "WebSocket", targets: ["WebSocket"]),
        .library(name: "WSClient", targets: ["WSClient"]),
        // The io_uring loop backend (needs liburing). Linking it makes `--io uring` /
        // `ServerConfiguration.io = .uring` available; without it every loop is epoll.
        .library(name: "TransportURing", targets: ["TransportURing"]),
        // Pub/sub across instances through Redis (needs libhiredis; WSServer alone does not).
        .library(name: "WSRedis", targets: ["WSRedis"]),
        .executable(name: "wss-server", targets: ["wss-server"]),
        .executable(name: "wss-bench", targets: ["wss-bench"]),
        .executable(name: "wss-client", targets: ["wss-client"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        // wss-server --config FILE (TOML). ~25 s of CPU once per clean build (toml++ is C++); README.
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        // libssl/libcrypto through pkg-config; shim.h wraps the macros Swift cannot call.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        // zlib through pkg-config for permessage-deflate (RFC 7692); shim.h wraps the init macros.
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // hiredis through pkg-config: only its sans-IO RESP reader and command formatting.
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        // Linux headers Glibc's module map leaves out (epoll, eventfd).
        .systemLibrary(name: "CLinux"),
        // liburing (Debian liburing-dev) behind a small C API of fixed-width types, for the io_uring
        // ring wrapper (TransportURing/URing*.swift). liburing.h defines _GNU_SOURCE and pulls in
        // system headers, which clashes with Glibc's Swift module if Swift imports it directly.
        .target(name: "CLiburing", linkerSettings: [.linkedLibrary("uring")]),
        // Sans-IO protocol core: HTTP head parser, handshake, frames, messages, close codes.
        .target(name: "WebSocket", dependencies: ["COpenSSL", "CZlib"]),
        // Event loops (epoll; io_uring when TransportURing is linked), sockets, TLS streams.
        .target(name: "Transport", dependencies: [
            "COpenSSL", "CLinux",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The io_uring ring wrapper and loop backend; registers itself with Transport when linked.
        .target(name: "TransportURing", dependencies: ["Transport", "CLiburing", "CLinux"]),
        // Version and git commit of the build, generated offline before every build (VERSION +
        // `git describe`), for --version and wss_build_info.
        .plugin(name: "BuildInfoPlugin", capability: .buildTool()),
        .target(name: "WSSBuildInfo", plugins: ["BuildInfoPlugin"]),
        // Server, connections, handlers, HTTP fallback, topics.
        .target(name: "WSServer", dependencies: [
            "WebSocket", "Transport", "WSSBuildInfo",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Redis client on our own event loop + the Redis backplane (and history) for Topics.
        .target(name: "WSRedis", dependencies: [
            "WSServer", "WebSocket", "Transport", "CHiredis", "CLinux",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // WebSocket client on the same loops and protocol core (ws and wss).
        .target(name: "WSClient", dependencies: ["WebSocket", "Transport"]),
        .executableTarget(name: "wss-server", dependencies: [
            "WSServer", "WSRedis", "WSSBuildInfo", "ToolSupport", "TransportURing",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "TOMLKit", package: "TOMLKit"),
        ]),
        // What the three tools share: one-line errors with exit status 1.
        .target(name: "ToolSupport", dependencies: [
            "Transport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Load generator and benchmark client (ws and wss), built on WSClient.
        .executableTarget(name: "wss-bench", dependencies: [
            "WSClient", "Transport", "TransportURing", "WSSBuildInfo", "ToolSupport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Command-line WebSocket client (interactive or pipe), built on WSClient.
        .executableTarget(name: "wss-client", dependencies: [
            "WSClient", "Transport", "TransportURing", "WSSBuildInfo", "ToolSupport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Raw TCP echo on io_uring: the completion-loop ceiling next to tools/tcpecho (make bench-peers).
        .executableTarget(name: "uring-echo", dependencies: ["Transport", "TransportURing"], path: "Tests/bench/uring-echo"),
        // Examples (built in CI so they keep compiling against the API).
        .executableTarget(name: "chat-room-example", dependencies: ["WSServer"], path: "Examples/ChatRoom"),
        .testTarget(name: "WebSocketTests", dependencies: ["WebSocket"]),
        // Counts the process's heap allocations (test binary only).
        .target(name: "CMallocCounter", path: "Tests/CMallocCounter"),
        // Initialises OpenSSL without its atexit cleanup in the test binary (see no_atexit.c).
        .target(name: "COpenSSLTestExit", path: "Tests/COpenSSLTestExit", linkerSettings: [.linkedLibrary("crypto")]),
        // Helpers shared by test targets (test certificates, timeouts, loopback sockets).
        .target(name: "TestSupport", dependencies: ["COpenSSLTestExit", .product(name: "Logging", package: "swift-log")], path: "Tests/TestSupport"),
        // TransportURing: the URing tests, and both backends for every test binary (WSS_IO=uring).
        .testTarget(name: "TransportTests", dependencies: ["Transport", "TransportURing", "COpenSSL", "CMallocCounter", "COpenSSLTestExit", "TestSupport"]),
        .testTarget(name: "WSRedisTests", dependencies: ["WSRedis", "WSServer", "WSClient", "WebSocket", "Transport", "TestSupport"]),
        .testTarget(name: "WSServerTests", dependencies: ["WSServer", "WSClient", "Transport", "COpenSSL", "CZlib", "CMallocCounter", "TestSupport"]),
    ]
)
