/// The page served on GET /: the classic chat page of the project's seed note (input `txt`,
/// buttons `btn` and `close`, lines in `content`, 【连接成功】 on open, 【关闭连接】 on close),
/// grown into a small product: a header with the app's name and the connection's state and
/// transport (`id="transport"`: websocket, sse or longpoll), your messages beside the replies
/// with timestamps, a nickname and room for the chat app, automatic reconnect with backoff and
/// jitter, labels in English and Chinese, a phone-width layout and an inline favicon. No
/// external resources. Text is inserted with textContent, never as HTML.
///
/// Transport choice (the page's script, `ChatPageTransports`): WebSocket first; if it has not
/// opened within 3 s or closes before opening, SSE + POST, then long polling;
/// `?transport=websocket|sse|longpoll` forces one. Wire formats: README "Fallback transports".
///
/// The parts live in their own files: markup (`ChatPageMarkup`), style (`ChatPageStyle`),
/// transports (`ChatPageTransports`), user interface (`ChatPageScript`), icon (`ChatPageIcon`).
public enum ChatPage {
    /// The page for the reply app (the classic default).
    public static let html = html(app: "reply")

    /// The page for an app (`reply`, `echo`, `chat`): the name goes in the header, and the
    /// chat app gets the nickname and room fields. `app` is inserted as text: only letters,
    /// digits and `-` are kept.
    public static func html(app: String) -> String {
        let name = String(app.unicodeScalars.filter { ($0.properties.isAlphabetic && $0.isASCII) || ("0"..."9").contains($0) || $0 == "-" }
            .map(Character.init))
        return """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="UTF-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="color-scheme" content="light dark">
        <title>wss-server · \(name)</title>
        <link rel="icon" href="\(ChatPageIcon.dataURL)">
        <style>\(ChatPageStyle.css)</style>
        </head>
        <body data-app="\(name)">
        \(ChatPageMarkup.body(app: name))
        <script>
        "use strict";
        var APP = "\(name)";
        \(ChatPageTransports.script)
        \(ChatPageScript.script)
        </script>
        </body>
        </html>
        """
    }
}
