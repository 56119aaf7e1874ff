import WebSocket

// The protocol core's types a server application names, and only those: the core's ~200
// other public symbols (ByteBuffer, FrameHeader, the parsers, ...) stay out of this module's
// API. `import WebSocket` brings the rest for code that drives the core directly.

/// A received message, valid during the callback (`OwnedMessage` to keep it).
public typealias Message = WebSocket.Message
/// A message copied out of the loop's buffers.
public typealias OwnedMessage = WebSocket.OwnedMessage
/// RFC 6455 §7.4 close codes.
public typealias CloseCode = WebSocket.CloseCode
/// A request head, as the upgrade hook sees it (`UpgradeRequest.head`).
public typealias HTTPRequestHead = WebSocket.HTTPRequestHead
/// Frame and message size limits (`ServerConfiguration.limits`).
public typealias MessageLimits = WebSocket.WebSocketProtocol.Limits
/// Request head limits (`ServerConfiguration.headLimits`).
public typealias HeadLimits = WebSocket.HTTPHeadParser.Limits
/// permessage-deflate settings (`ServerConfiguration.deflate`).
public typealias DeflateOptions = WebSocket.DeflateOptions
/// A configuration value out of range.
public typealias ConfigurationError = WebSocket.ConfigurationError
