/// The page's transports and the choice between them. Each transport object has `kind`,
/// `url`, `send(data)`, `close(code, reason)`, `abort()`, and calls `onopen()`,
/// `onmessage(data)` (a string or an ArrayBuffer) and `onclose({code, reason, wasClean})`.
/// Formats: README "Fallback transports" (SSE events; `<kind><length>:<payload>` batches).
enum ChatPageTransports {
    static let script = #"""
    var TRANSPORTS = ["websocket", "sse", "longpoll"];
    var OPEN_TIMEOUT_MS = 3000;          // a WebSocket that has not opened by then is given up
    var MAX_RECORDS_PER_POST = 100;      // the server's default --max-messages-per-post
    var utf8 = new TextEncoder(), utf8dec = new TextDecoder("utf-8");

    function batchEncode(items) {
      var parts = [], total = 0;
      items.forEach(function (it) {
        var head = utf8.encode(it.kind + it.bytes.length + ":");
        parts.push(head, it.bytes);
        total += head.length + it.bytes.length;
      });
      var out = new Uint8Array(total), at = 0;
      parts.forEach(function (p) { out.set(p, at); at += p.length; });
      return out;
    }
    function batchDecode(buffer) {
      var b = new Uint8Array(buffer), i = 0, out = [];
      while (i < b.length) {
        var kind = String.fromCharCode(b[i++]), n = 0, digits = 0;
        while (i < b.length && b[i] !== 58) {
          var d = b[i++] - 48;
          if (d < 0 || d > 9 || ++digits > 10) throw new Error("malformed batch");
          n = n * 10 + d;
        }
        if (i >= b.length || digits === 0 || i + 1 + n > b.length) throw new Error("malformed batch");
        i += 1;
        out.push({kind: kind, bytes: b.subarray(i, i + n)});
        i += n;
      }
      return out;
    }
    function toRecord(data) {
      if (typeof data === "string") return {kind: "t", bytes: utf8.encode(data)};
      if (data instanceof ArrayBuffer) return {kind: "b", bytes: new Uint8Array(data)};
      return {kind: "b", bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength)};
    }
    function fromBase64(s) { return Uint8Array.from(atob(s), function (c) { return c.charCodeAt(0); }); }
    function parseClose(text) {
      var sp = text.indexOf(" ");
      return sp < 0 ? {code: +text, reason: ""} : {code: +text.slice(0, sp), reason: text.slice(sp + 1)};
    }

    // POSTs queued records to the session URL, one request at a time so order is kept.
    function Upstream(sessionURL, onfail) {
      var queue = [], busy = false;
      function pump() {
        if (busy || queue.length === 0) return;
        busy = true;
        var body = batchEncode(queue.splice(0, MAX_RECORDS_PER_POST));
        fetch(sessionURL(), {method: "POST", body: body, cache: "no-store",
                             headers: {"Content-Type": "application/octet-stream"}})
          .then(function (r) { busy = false; if (r.ok) pump(); else onfail("POST answered " + r.status); },
                function (e) { busy = false; onfail("POST failed"); });
      }
      this.push = function (record) { queue.push(record); pump(); };
      this.pending = function () { return queue.reduce(function (n, r) { return n + r.bytes.length; }, 0); };
    }

    function WebSocketTransport(url) {
      var self = this, ws = new WebSocket(url);
      ws.binaryType = "arraybuffer";
      self.kind = "websocket";
      self.url = ws.url;
      ws.onopen = function () { self.onopen(); };
      ws.onmessage = function (e) { self.onmessage(e.data); };
      ws.onclose = function (e) { self.onclose({code: e.code, reason: e.reason, wasClean: e.wasClean}); };
      self.send = function (data) { ws.send(data); };
      self.close = function (code, reason) { ws.close(code, reason); };
      self.abort = function () { ws.onopen = ws.onmessage = ws.onclose = null; try { ws.close(); } catch (e) {} };
      self.bufferedAmount = function () { return ws.bufferedAmount; };
    }

    // SSE downstream (EventSource), POST upstream. EventSource would reconnect on its own into
    // a fresh session; the page decides instead, so an error ends this transport.
    function SSETransport(url, sessionURL) {
      var self = this, sid = null, done = false, es = new EventSource(url);
      var up = new Upstream(function () { return sessionURL(sid); }, function (why) { finish(1006, why, false); });
      self.kind = "sse";
      self.url = es.url;
      function finish(code, reason, clean) {
        if (done) return;
        done = true;
        es.close();
        self.onclose({code: code, reason: reason, wasClean: clean});
      }
      es.addEventListener("session", function (e) { sid = e.data; self.onopen(); });
      es.onmessage = function (e) { self.onmessage(e.data); };
      es.addEventListener("text64", function (e) { self.onmessage(utf8dec.decode(fromBase64(e.data))); });
      es.addEventListener("binary", function (e) { self.onmessage(fromBase64(e.data).buffer); });
      es.addEventListener("close", function (e) { var c = parseClose(e.data); finish(c.code, c.reason, true); });
      es.onerror = function () { finish(1006, "event stream ended", false); };
      self.send = function (data) { up.push(toRecord(data)); };
      self.close = function (code, reason) {
        up.push({kind: "c", bytes: utf8.encode(code + " " + reason)});
        finish(code, reason, true);
      };
      self.abort = function () { done = true; es.close(); };
      self.bufferedAmount = function () { return up.pending(); };
    }

    // Long polling: GET held until there is something or the poll timeout; ask again at once.
    function LongPollTransport(url, sessionURL) {
      var self = this, sid = null, done = false, ctrl = null;
      var up = new Upstream(function () { return sessionURL(sid); }, function (why) { finish(1006, why, false); });
      self.kind = "longpoll";
      self.url = new URL(url, location.href).href;
      function finish(code, reason, clean) {
        if (done) return;
        done = true;
        if (ctrl) ctrl.abort();
        self.onclose({code: code, reason: reason, wasClean: clean});
      }
      function deliver(records) {
        for (var k = 0; k < records.length && !done; k++) {
          var r = records[k];
          if (r.kind === "s") { sid = utf8dec.decode(r.bytes); self.onopen(); }
          else if (r.kind === "t") self.onmessage(utf8dec.decode(r.bytes));
          else if (r.kind === "b") self.onmessage(r.bytes.slice().buffer);
          else if (r.kind === "c") { var c = parseClose(utf8dec.decode(r.bytes)); finish(c.code, c.reason, true); }
        }
      }
      function poll(target) {
        ctrl = new AbortController();
        fetch(target, {cache: "no-store", signal: ctrl.signal})
          .then(function (r) {
            if (r.status !== 200) throw new Error("poll answered " + r.status);
            return r.arrayBuffer();
          })
          .then(function (buffer) {
            if (done) return;
            deliver(batchDecode(buffer));
            if (sid === null) throw new Error("no session in the first answer");
            if (!done) poll(sessionURL(sid));
          })
          .catch(function (e) { finish(1006, String(e && e.message || e), false); });
      }
      self.send = function (data) { up.push(toRecord(data)); };
      self.close = function (code, reason) {
        up.push({kind: "c", bytes: utf8.encode(code + " " + reason)});
        finish(code, reason, true);
      };
      self.abort = function () { done = true; if (ctrl) ctrl.abort(); };
      self.bufferedAmount = function () { return up.pending(); };
      poll(url);
    }

    function makeTransport(kind) {
      if (kind === "websocket") return new WebSocketTransport(endpointURL("websocket"));
      var session = function (sid) { return endpointURL(kind, sid); };
      if (kind === "sse") return new SSETransport(endpointURL("sse"), session);
      return new LongPollTransport(endpointURL("longpoll"), session);
    }

    // ---- choosing: WebSocket, then SSE, then long polling (or the one ?transport= forces)
    var forced = new URLSearchParams(location.search).get("transport");
    var ORDER = TRANSPORTS.indexOf(forced) >= 0 ? [forced] : TRANSPORTS;
    var socket = null;        // the open transport, if any
    var pending = null;       // the transport being tried
    var userClosed = false, attempt = 0, lastGood = 0, reconnectTimer = null;

    function connectFrom(index) {
      var kind = ORDER[index], opened = false, settled = false, t;
      showState("connecting", kind);
      function next(why) {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (userClosed) return;
        if (index + 1 < ORDER.length) { note(kind + " failed (" + why + "), trying " + ORDER[index + 1]); connectFrom(index + 1); }
        else { showState("closed", kind); scheduleReconnect(); }
      }
      var timer = setTimeout(function () { if (!opened) { t.abort(); next("not open after 3 s"); } }, OPEN_TIMEOUT_MS);
      try { t = makeTransport(kind); } catch (e) { return next(String(e)); }
      pending = t;
      t.onopen = function () {
        opened = true; settled = true; clearTimeout(timer);
        socket = t; pending = null; lastGood = index; attempt = 0;
        onTransportOpen(t);
      };
      t.onmessage = function (data) { if (socket === t) onTransportMessage(data); };
      t.onclose = function (ev) {
        if (!opened) return next("closed before opening, code " + ev.code);
        if (socket === t) socket = null;
        onTransportClose(t, ev);
        if (!userClosed) scheduleReconnect();
      };
    }

    // Backoff with jitter: the ceiling doubles from 0.5 s to 30 s; the delay is drawn from its
    // upper half, so a server restart is not met by every page at the same instant.
    function scheduleReconnect() {
      if (userClosed || reconnectTimer !== null) return;
      var ceiling = Math.min(30000, 500 * Math.pow(2, attempt++));
      var delay = Math.round(ceiling / 2 + Math.random() * ceiling / 2);
      var secs = (delay / 1000).toFixed(1);
      hint("reconnecting in " + secs + " s · " + secs + " 秒后重连");
      reconnectTimer = setTimeout(function () { reconnectTimer = null; connectFrom(lastGood); }, delay);
    }
    function cancelReconnect() {
      if (reconnectTimer !== null) { clearTimeout(reconnectTimer); reconnectTimer = null; }
    }
    """#
}
