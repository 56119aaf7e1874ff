import Transport

/// Makes io_uring loops available to Transport's `EventLoop` (`--io uring`, `WSS_IO=uring`,
/// `ServerConfiguration.io`). Linking this target is enough: a load-time constructor in
/// CLiburing calls `install()` before `main`, so every program and test binary that links it
/// has both backends, and one that does not (a library user of WSServer or WSClient alone)
/// has epoll only, with no liburing to build or load. Calling it again is harmless.
public enum URingLoops {
    public static func install() {
        guard URingRegistration.current == nil else { return }
        URingRegistration.current = URingRegistration(
            probe: { URingProbe.check() },
            makeBackend: { () throws(TransportError) -> any LoopBackend in try URingLoopBackend() })
    }
}

/// Called by CLiburing's constructor (uring.c) when the program is loaded.
@_cdecl("wss_transport_uring_install")
public func wssTransportURingInstall() { URingLoops.install() }
