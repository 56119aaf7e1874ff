import WebSocket

// The protocol core's types a client application names (see WSServer's PublicTypes.swift).

public typealias Message = WebSocket.Message
public typealias OwnedMessage = WebSocket.OwnedMessage
public typealias CloseCode = WebSocket.CloseCode
public typealias Opcode = WebSocket.Opcode
public typealias MessageLimits = WebSocket.WebSocketProtocol.Limits
public typealias DeflateOptions = WebSocket.DeflateOptions
