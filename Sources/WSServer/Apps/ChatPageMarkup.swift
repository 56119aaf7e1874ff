/// The page's body. Classic ids kept: `txt`, `btn`, `close`, `content`. New: `status` (state
/// dot and words), `transport` (websocket / sse / longpoll), `nick` and `room` (chat app only),
/// `reconnect` (shown once closed). Every label is English and Chinese.
enum ChatPageMarkup {
    static func body(app: String) -> String {
        let chatFields = app == "chat" ? """
          <div class="row who">
            <label>Nickname 昵称 <input type="text" id="nick" maxlength="32" autocomplete="nickname"></label>
            <label>Room 房间 <input type="text" id="room" maxlength="32" value="lobby"></label>
          </div>
        """ : ""
        return """
        <header>
          <h1><span class="brand">wss-server</span> <span class="app">\(app)</span></h1>
          <div class="conn" aria-live="polite">
            <span id="status" class="state connecting" data-state="connecting"><span class="dot"></span><span id="status-text">connecting… 连接中</span></span>
            <code id="transport" title="transport 传输方式">websocket</code>
          </div>
        </header>
        <main>
        \(chatFields)
          <div id="content" role="log" aria-label="messages 消息"></div>
          <div class="row send">
            <input type="text" id="txt" autofocus autocomplete="off" placeholder="Type a message · 输入消息" aria-label="message 消息">
            <input type="button" id="btn" value="Send 提交" onclick="sendMsg();" disabled>
            <input type="button" id="close" value="Close 关闭连接" onclick="closeConn();">
            <input type="button" id="reconnect" value="Reconnect 重新连接" onclick="reconnectNow();" hidden>
          </div>
        </main>
        <footer><span id="hint">Enter sends · 回车发送</span></footer>
        """
    }
}
