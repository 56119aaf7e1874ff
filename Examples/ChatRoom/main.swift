// A chat room with token auth in the upgrade hook, on wss-server's library API.
// Run: swift run chat-room-example [PORT]   then connect to ws://127.0.0.1:9000/room?user=ann&token=letmein
// Ctrl-C (SIGINT) or SIGTERM: every client gets close 1001 (going away), then the program ends.
import Glibc
import WSServer

final class ChatRoom: WebSocketHandler {
    let tokens = ["ann": "letmein", "bob": "hunter2"]      // your user store here
    final class User { let name: String; init(_ name: String) { self.name = name } }

    func shouldUpgrade(_ request: UpgradeRequest) -> UpgradeDecision {
        let query = Dictionary((request.query ?? "").split(separator: "&").map {
            let kv = $0.split(separator: "=", maxSplits: 1).map(String.init)
            return (kv[0], kv.count > 1 ? kv[1] : "")
        }, uniquingKeysWith: { a, _ in a })
        guard let user = query["user"], tokens[user] == query["token"] else {
            return .reject(status: 401, reason: "unknown user or wrong token")
        }
        return .accept(subprotocol: request.subprotocols.first { $0 == "chat.v1" }, userData: User(user))
    }
    func onOpen(_ connection: WebSocketConnection) {
        connection.subscribe("room")
        connection.topics.publish("room", text: "* \(name(connection)) joined")
    }
    func onMessage(_ connection: WebSocketConnection, _ message: Message) {
        guard message.isText else { return }
        connection.topics.publish("room", text: "\(name(connection)): \(message.text)")
    }
    func onClose(_ connection: WebSocketConnection, code: CloseCode, reason: String) {
        connection.topics.publish("room", text: "* \(name(connection)) left")
    }
    func name(_ c: WebSocketConnection) -> String { (c.userData as? User)?.name ?? "?" }
}

var config = ServerConfiguration()
config.host = "127.0.0.1"
config.port = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 9000 : 9000
let server = try Server(configuration: config)
server.route("/room", ChatRoom())
let left = try server.runUntilSignalled(onReady: {
    // write(2), not print: a pipe would keep print's line in its buffer.
    let line = "chat room on \(server.url)/room\n"
    _ = line.withCString { write(1, $0, strlen($0)) }
})
print(left == 0 ? "every client said goodbye" : "\(left) client(s) did not answer in time")
