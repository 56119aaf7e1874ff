/// The chat page served on GET /: the classic one from the project's seed note (input `txt`,
/// buttons `btn` and `close`, events as lines in `content`), connecting back to the same origin
/// over wss:// or ws:// as it was loaded. Text is inserted with textContent, never as HTML.
public enum ChatPage {
    public static let html = """
    <!DOCTYPE html>
    <html lang="zh">
    <head>
    <meta charset="UTF-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>wss-server chat</title>
    <style>
      body { font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; }
      #content { margin-top: 1rem; border-top: 1px solid #ccc; }
      #content div { padding: .15rem 0; border-bottom: 1px solid #eee; white-space: pre-wrap; word-break: break-word; }
      input[type=text] { width: 60%; font-size: 1rem; }
      .status { color: #666; }
    </style>
    </head>
    <body>
    <div>
      <input type="text" id="txt" autofocus placeholder="message"/>
      <input type="button" id="btn" value="提交" onclick="sendMsg();"/>
      <input type="button" id="close" value="关闭连接" onclick="closeConn();"/>
    </div>
    <div id="content"></div>
    <script>
      var scheme = location.protocol === "https:" ? "wss://" : "ws://";
      var socket = new WebSocket(scheme + location.host + "/chatsocket");
      var closedShown = false;
      function addLine(text, cls) {
        var line = document.createElement("div");
        line.textContent = text;
        if (cls) line.className = cls;
        document.getElementById("content").appendChild(line);
      }
      socket.onopen = function () { addLine("【连接成功】", "status"); };
      socket.onmessage = function (event) {
        if (typeof event.data === "string") { addLine(event.data); }
        else { addLine("(binary message, " + (event.data.size || event.data.byteLength) + " bytes)", "status"); }
      };
      socket.onclose = function (event) {
        if (!closedShown) { closedShown = true; addLine("【关闭连接】", "status"); }
      };
      socket.onerror = function () { addLine("(connection error)", "status"); };
      function sendMsg() {
        var txt = document.getElementById("txt");
        if (socket.readyState === WebSocket.OPEN && txt.value !== "") { socket.send(txt.value); }
        txt.value = "";
      }
      function closeConn() {
        socket.close(1000, "bye");
        if (!closedShown) { closedShown = true; addLine("【关闭连接】", "status"); }
      }
      document.getElementById("txt").addEventListener("keydown", function (e) {
        if (e.key === "Enter") sendMsg();
      });
    </script>
    </body>
    </html>
    """
}
