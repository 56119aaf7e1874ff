/// The page's stylesheet: a header bar, message bubbles (yours on the right, replies on the
/// left, status lines centred), readable from 320 px phones to desktops, light and dark.
enum ChatPageStyle {
    static let css = #"""
    :root { --bg: #f6f7f9; --fg: #111827; --muted: #6b7280; --me: #2563eb; --me-fg: #fff;
            --them: #fff; --line: #e5e7eb; --ok: #16a34a; --wait: #d97706; --bad: #dc2626; }
    @media (prefers-color-scheme: dark) {
      :root { --bg: #0f172a; --fg: #e5e7eb; --muted: #94a3b8; --them: #1e293b; --line: #334155; }
    }
    * { box-sizing: border-box; }
    body { margin: 0; font: 16px/1.45 system-ui, -apple-system, "Segoe UI", "Noto Sans", "WenQuanYi Micro Hei", sans-serif;
           background: var(--bg); color: var(--fg); display: flex; flex-direction: column;
           min-height: 100vh; min-height: 100dvh; }
    header { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; justify-content: space-between;
             padding: .6rem 1rem; border-bottom: 1px solid var(--line); background: var(--them); }
    h1 { font-size: 1.1rem; margin: 0; }
    h1 .app { color: var(--muted); font-weight: 500; }
    .conn { display: flex; gap: .5rem; align-items: center; font-size: .9rem; }
    .state { display: inline-flex; gap: .35rem; align-items: center; }
    .dot { width: .7rem; height: .7rem; border-radius: 50%; background: var(--wait); display: inline-block; }
    .state.open .dot { background: var(--ok); }
    .state.closed .dot { background: var(--bad); }
    .state.connecting .dot { animation: pulse 1s infinite alternate; }
    @keyframes pulse { from { opacity: .3; } to { opacity: 1; } }
    #transport { padding: .05rem .4rem; border: 1px solid var(--line); border-radius: .3rem; font-size: .8rem; }
    main { flex: 1; display: flex; flex-direction: column; width: 100%; max-width: 46rem; margin: 0 auto;
           padding: .75rem 1rem; gap: .6rem; }
    .row { display: flex; gap: .5rem; flex-wrap: wrap; }
    .who label { display: flex; gap: .35rem; align-items: center; font-size: .9rem; color: var(--muted); flex: 1 1 10rem; }
    .who input { flex: 1; min-width: 0; }
    /* Fills the window and scrolls inside; on a very short window the page scrolls instead
       (min-height wins over max-height), so nothing ever overlaps. */
    #content { flex: 1; overflow-y: auto; display: flex; flex-direction: column; gap: .35rem;
               min-height: 10rem; max-height: calc(100dvh - 11rem);
               padding: .5rem; border: 1px solid var(--line); border-radius: .6rem; background: var(--bg); }
    .msg { max-width: 85%; padding: .35rem .65rem; border-radius: .8rem; background: var(--them);
           border: 1px solid var(--line); white-space: pre-wrap; word-break: break-word; align-self: flex-start; }
    .msg.me { align-self: flex-end; background: var(--me); color: var(--me-fg); border-color: var(--me); }
    .msg.sys { align-self: center; background: none; border: none; color: var(--muted); font-size: .85rem; }
    .meta { display: block; font-size: .72rem; opacity: .75; }
    .msg.sys .meta { display: inline; margin-right: .4rem; }
    input[type=text] { font: inherit; padding: .45rem .6rem; border: 1px solid var(--line); border-radius: .45rem;
                       background: var(--them); color: var(--fg); }
    input[type=button] { font: inherit; padding: .45rem .8rem; border-radius: .45rem; border: 1px solid var(--line);
                         background: var(--them); color: var(--fg); cursor: pointer; }
    #btn { background: var(--me); color: var(--me-fg); border-color: var(--me); }
    input[type=button]:disabled { opacity: .45; cursor: not-allowed; }
    .send #txt { flex: 1 1 12rem; min-width: 0; }
    footer { text-align: center; color: var(--muted); font-size: .75rem; padding: .3rem; }
    @media (max-width: 30rem) {
      header { padding: .5rem .75rem; }
      main { padding: .5rem .6rem; }
      .send input[type=button] { flex: 1 1 auto; }
      .msg { max-width: 92%; }
    }
    """#
}
