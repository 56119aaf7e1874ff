// The library's async client: connect, send, read replies, close.
// Run against a server: swift run async-client-example wss://localhost:8443/chatsocket certs/ca.pem
import WSClient

let args = CommandLine.arguments
let url = args.count > 1 ? args[1] : "ws://127.0.0.1:8080/chatsocket"
let ca = args.count > 2 ? args[2] : nil

let ws = try await WebSocketClient.connect(to: url, caFile: ca)
for text in ["hello", "你好 🚀"] {
    ws.send(text: text)
}
var received = 0
for await message in ws.messages {
    print(message.isText ? message.text : "\(message.data.count) bytes")
    received += 1
    if received == 2 { ws.close() }
}
print("closed: \(ws.closeCode.map { "\($0)" } ?? "?")")
