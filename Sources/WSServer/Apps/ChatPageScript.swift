/// The page's user interface: lines in `content` (yours on the right, replies on the left,
/// status lines centred, each with a timestamp), the status indicator and `transport`, send
/// enabled only while open, the chat app's nickname and room (kept in localStorage), and the
/// chat envelope: the last offset per room, resumed from on reconnect.
enum ChatPageScript {
    static let script = #"""
    var CONNECTED = "【连接成功】", CLOSED = "【关闭连接】";
    var NAMES = {websocket: "WebSocket", sse: "SSE", longpoll: "long polling 长轮询"};
    var ME = Math.random().toString(36).slice(2, 10);   // tells our own chat messages apart
    var content = document.getElementById("content");
    var closedShown = false;

    // Resume (chat app, README "History and recovery"): every text message in a room comes
    // in an envelope {"type":"message","offset","epoch","data"}; `unwrap` keeps the last
    // position per room and returns `data`; `resumeQuery` adds since=&epoch= to a reconnect
    // so the server replays what was missed. {"type":"recovery"} says whether it could: a
    // notice when it could not. null offsets (no history) are never resumed from.
    var chatHistory = {
      rooms: {},
      unwrap: function (data) {
        if (APP !== "chat" || typeof data !== "string" || data.slice(0, 8) !== '{"type":') return data;
        var m;
        try { m = JSON.parse(data); } catch (e) { return data; }
        var here = room(), had = this.rooms[here];
        if (typeof m.offset === "number" && typeof m.epoch === "string") this.rooms[here] = {offset: m.offset, epoch: m.epoch};
        if (m.type === "message" && typeof m.data === "string") return m.data;
        if (m.type === "recovery") {
          if (!m.recovered && (had || m.resync)) note("some missed messages could not be recovered 部分消息无法恢复");
          else if (m.count > 0) note("recovered " + m.count + " missed message(s) 已恢复");
          return null;
        }
        return data;
      },
      resumeQuery: function () {
        var p = this.rooms[room()];
        return p ? "since=" + p.offset + "&epoch=" + encodeURIComponent(p.epoch) : "";
      }
    };

    function field(id, fallback) {
      var el = document.getElementById(id);
      return el && el.value.trim() !== "" ? el.value.trim() : fallback;
    }
    function nick() { return field("nick", "guest-" + ME.slice(0, 4)); }
    function room() { return field("room", "lobby"); }

    function endpointURL(kind, sid) {
      var q = [];
      if (APP === "chat") q.push("room=" + encodeURIComponent(room()));
      var resume = chatHistory.resumeQuery();
      if (resume) q.push(resume);
      if (kind !== "websocket") q.push("transport=" + kind);
      if (sid) q.push("sid=" + encodeURIComponent(sid));
      var path = "/chatsocket" + (q.length ? "?" + q.join("&") : "");
      if (kind !== "websocket") return path;
      return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
    }

    function two(n) { return (n < 10 ? "0" : "") + n; }
    function stamp() { var d = new Date(); return two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds()); }
    function addLine(text, cls, who) {
      var line = document.createElement("div"), meta = document.createElement("span"), body = document.createElement("span");
      line.className = "msg " + (cls || "them");
      meta.className = "meta";
      meta.textContent = stamp() + (who ? " · " + who : "");
      body.className = "text";
      body.textContent = text;
      line.appendChild(meta);
      line.appendChild(body);
      content.appendChild(line);
      content.scrollTop = content.scrollHeight;
    }
    function note(text) { addLine(text, "sys"); }
    function hint(text) { document.getElementById("hint").textContent = text; }

    function showState(state, kind) {
      var el = document.getElementById("status");
      el.className = "state " + state;
      el.setAttribute("data-state", state);
      var words = state === "open" ? "open 已连接 · " + NAMES[kind]
                : state === "connecting" ? "connecting… 连接中 · " + NAMES[kind] : "closed 已关闭";
      document.getElementById("status-text").textContent = words;
      document.getElementById("transport").textContent = kind;
      document.getElementById("btn").disabled = state !== "open";
      document.getElementById("close").disabled = state === "closed";
      document.getElementById("reconnect").hidden = state !== "closed" || !userClosed;
    }

    function onTransportOpen(t) {
      closedShown = false;
      showState("open", t.kind);
      hint("Enter sends · 回车发送");
      addLine(CONNECTED + " " + NAMES[t.kind], "sys");
    }
    function onTransportMessage(data) {
      data = chatHistory.unwrap(data);
      if (data === null) return;
      if (typeof data !== "string") {
        addLine("(binary message 二进制消息, " + data.byteLength + " bytes)", "sys");
        return;
      }
      if (APP === "chat" && data.charAt(0) === "{") {
        try {
          var m = JSON.parse(data);
          if (m && typeof m.text === "string") {
            if (m.from !== ME) addLine(m.text, "them", String(m.nick || "?"));
            return;
          }
        } catch (e) { /* not ours: show as it came */ }
      }
      addLine(data, "them");
    }
    function onTransportClose(t, ev) {
      showState("closed", t.kind);
      if (!closedShown) { closedShown = true; addLine(CLOSED + " " + ev.code + (ev.reason ? " " + ev.reason : ""), "sys"); }
    }

    function sendMsg() {
      var txt = document.getElementById("txt"), text = txt.value;
      if (socket === null || text === "") return;
      if (APP === "chat") {
        socket.send(JSON.stringify({nick: nick(), text: text, from: ME}));
        addLine(text, "me", nick());
      } else {
        socket.send(text);
        addLine(text, "me", "you 我");
      }
      txt.value = "";
      txt.focus();
    }
    function closeConn() {
      userClosed = true;
      cancelReconnect();
      if (socket !== null) socket.close(1000, "bye");
      else if (pending !== null) pending.abort();
      showState("closed", document.getElementById("transport").textContent);
      if (!closedShown) { closedShown = true; addLine(CLOSED, "sys"); }
    }
    function reconnectNow() {
      userClosed = false;
      attempt = 0;
      cancelReconnect();
      connectFrom(0);
    }

    document.getElementById("txt").addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.isComposing) { e.preventDefault(); sendMsg(); }
    });
    ["nick", "room"].forEach(function (id) {
      var el = document.getElementById(id);
      if (!el) return;
      try { var saved = localStorage.getItem("wss-" + id); if (saved) el.value = saved; } catch (e) {}
      el.addEventListener("change", function () {
        try { localStorage.setItem("wss-" + id, el.value); } catch (e) {}
        if (id === "room" && socket !== null) { addLine("room 房间: " + room(), "sys"); socket.close(1000, "room change"); }
      });
    });
    connectFrom(0);
    """#
}
