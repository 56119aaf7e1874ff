import CLiburing
import Transport

/// A provided-buffer ring (IORING_REGISTER_PBUF_RING, Linux 5.19): `count` buffers of `size`
/// bytes that the kernel picks from when a multishot recv on this group has data, so a
/// connection holds no receive buffer while it is idle — only while its bytes are processed.
/// Give each buffer back with `recycle` once its bytes are consumed; `publish` (once per loop
/// iteration) makes the recycled ones visible to the kernel in one store.
///
/// Loop-confined, like the ring it is registered with (which it keeps alive).
public final class URingBufferRing {
    public let group: UInt16
    public let count: Int
    public let size: Int
    let uring: URing
    let handle: OpaquePointer
    let storage: UnsafeMutableRawPointer

    /// `count` must be a power of two, at most 32,768.
    public init(uring: URing, group: UInt16, count: Int, size: Int) throws(TransportError) {
        precondition(count > 0 && count <= 1 << 15 && count & (count - 1) == 0, "count must be a power of two ≤ 32768")
        precondition(size > 0 && size <= Int(UInt32.max), "bad buffer size")
        var err: Int32 = 0
        guard let h = wss_buf_ring_new(uring.handle, group, UInt32(count), &err) else {
            throw .syscall("io_uring_register_buf_ring", -err)
        }
        self.uring = uring
        self.group = group
        self.count = count
        self.size = size
        handle = h
        storage = UnsafeMutableRawPointer.allocate(byteCount: count * size, alignment: 64)
        for id in 0..<count { wss_buf_ring_add(h, storage + id * size, UInt32(size), UInt16(id)) }
        publish()
    }

    deinit {
        wss_buf_ring_free(uring.handle, handle)
        storage.deallocate()
    }

    /// The first `length` bytes of buffer `id` (what its completion reported).
    public func buffer(_ id: UInt16, length: Int) -> UnsafeMutableRawBufferPointer {
        precondition(Int(id) < count && length >= 0 && length <= size, "buffer \(id) / \(length) bytes out of range")
        return UnsafeMutableRawBufferPointer(start: storage + Int(id) * size, count: length)
    }

    /// Gives buffer `id` back (to the kernel at the next `publish`; at once when many wait).
    public func recycle(_ id: UInt16) {
        precondition(Int(id) < count, "buffer \(id) out of range")
        wss_buf_ring_add(handle, storage + Int(id) * size, UInt32(size), id)
        if Int(wss_buf_ring_staged(handle)) >= count / 2 { publish() }
    }

    /// Makes every recycled buffer visible to the kernel.
    public func publish() { wss_buf_ring_publish(handle) }
}
