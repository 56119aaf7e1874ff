/// A growable byte buffer with a read index and a write index over one heap block.
///
/// It is a class so that pointers into its storage stay valid while the owner holds it,
/// and so that moving it between structs never copies bytes. Storage is allocated lazily
/// and can be released when the buffer drains (`releaseIfEmpty`), so an idle connection
/// holds no buffer memory.
public final class ByteBuffer {
    @exclusivity(unchecked) @usableFromInline var storage: UnsafeMutableRawPointer?
    @exclusivity(unchecked) @usableFromInline var capacity: Int = 0
    /// Index of the first unread byte.
    @exclusivity(unchecked) @usableFromInline var readIndex: Int = 0
    /// Index one past the last written byte.
    @exclusivity(unchecked) @usableFromInline var writeIndex: Int = 0

    public init(capacity: Int = 0) {
        if capacity > 0 { grow(to: capacity) }
    }

    deinit { if let storage { LargeBlockCache.deallocate(storage, size: capacity) } }

    /// Bytes written and not yet consumed.
    @inlinable public var readableCount: Int { writeIndex - readIndex }
    @inlinable public var isEmpty: Bool { writeIndex == readIndex }
    /// Bytes of heap memory this buffer holds.
    @inlinable public var allocatedBytes: Int { capacity }

    /// The unread bytes. Valid until the next mutation of this buffer.
    @inlinable public var readableBytes: UnsafeRawBufferPointer {
        guard let storage else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: storage + readIndex, count: writeIndex - readIndex)
    }

    /// Mutable view of the unread bytes (used to unmask in place).
    @inlinable package var mutableReadableBytes: UnsafeMutableRawBufferPointer {
        guard let storage else { return UnsafeMutableRawBufferPointer(start: nil, count: 0) }
        return UnsafeMutableRawBufferPointer(start: storage + readIndex, count: writeIndex - readIndex)
    }

    @usableFromInline func grow(to minimum: Int) {
        // Slide unread bytes to the front first; grow only if that is not enough.
        if readIndex > 0 {
            let count = writeIndex - readIndex
            if count > 0, let storage { storage.copyMemory(from: storage + readIndex, byteCount: count) }
            readIndex = 0
            writeIndex = count
            if capacity >= minimum { return }
        }
        var newCapacity = Swift.max(capacity, 64)
        while newCapacity < minimum { newCapacity &*= 2 }
        let newStorage = LargeBlockCache.allocate(newCapacity)
        if let storage {
            if writeIndex > 0 { newStorage.copyMemory(from: storage, byteCount: writeIndex) }
            LargeBlockCache.deallocate(storage, size: capacity)
        }
        storage = newStorage
        capacity = newCapacity
    }

    /// Makes room for `count` more bytes and returns a pointer to write them at;
    /// call `commitWrite(count)` afterwards with how many were actually written.
    @inlinable @inline(__always) package func reserveWritable(_ count: Int) -> UnsafeMutableRawPointer {
        if writeIndex &+ count > capacity { grow(to: writeIndex - readIndex + count) }
        return storage! + writeIndex
    }

    @inlinable package func commitWrite(_ count: Int) {
        writeIndex &+= count
    }

    @inlinable @inline(__always) public func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        let dst = reserveWritable(bytes.count)
        dst.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        writeIndex += bytes.count
    }

    @inlinable public func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    @inlinable public func append(_ byte: UInt8) {
        let dst = reserveWritable(1)
        dst.storeBytes(of: byte, as: UInt8.self)
        writeIndex += 1
    }

    @inlinable public func append(_ string: String) {
        var s = string
        s.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    /// Marks `count` unread bytes as consumed.
    @inlinable public func consume(_ count: Int) {
        readIndex += count
        if readIndex == writeIndex { readIndex = 0; writeIndex = 0 }
    }

    /// Drops everything.
    public func clear() {
        readIndex = 0
        writeIndex = 0
    }

    /// Frees the storage if nothing is unread and the block is at least `threshold` bytes.
    package func releaseIfEmpty(threshold: Int = 0) {
        if readIndex == writeIndex, capacity >= threshold, let storage {
            LargeBlockCache.deallocate(storage, size: capacity)
            self.storage = nil
            capacity = 0
            readIndex = 0
            writeIndex = 0
        }
    }

    /// A copy of the unread bytes.
    public var bytes: [UInt8] { Array(readableBytes) }
}
