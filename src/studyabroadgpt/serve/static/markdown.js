// A small, safe Markdown renderer for the chat page (no dependencies, no build step).
//
// Safety: model text is only ever emitted through escapeHtml; the only markup is built here, from a fixed set
// of elements (p, h3-h6, ul/ol/li, blockquote, pre/code, strong, em, br, and links to http(s) URLs or to the
// sources panel). Code spans and links are cut out of a line as whole tokens first; each is held by one
// private-use character (U+E000) that is removed from model text before anything else, so model text can
// never forge, reorder or re-expand a token (the former NUL placeholders could: NULs in the model's text
// yielded a live onmouseover attribute, and a code span holding "\u0000 0 \u0000" looped forever). Tokens are
// put back in one pass, in order. Every pattern is linear-time or bounded, so no answer can hang the page.
"use strict";

(function (global) {
  const HOLD = "\uE000";

  function escapeHtml(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
                    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }

  // Code spans, [label](https://url) links and [n] citations, whichever starts first. Labels are bounded so a
  // line of "[" cannot make the search quadratic.
  const TOKEN = /`([^`\n]{1,2000})`|\[([^\]\n]{1,300})\]\((https?:\/\/[^\s)]{1,2000})\)|\[(\d{1,2})\](?!\()/g;
  const CODE = /`([^`\n]{1,2000})`/g;

  function codeSpans(text) {  // escaped text with its code spans as <code> (for link labels)
    let out = "", last = 0, m;
    CODE.lastIndex = 0;
    while ((m = CODE.exec(text)) !== null) {
      out += escapeHtml(text.slice(last, m.index)) + "<code>" + escapeHtml(m[1]) + "</code>";
      last = CODE.lastIndex;
    }
    return out + escapeHtml(text.slice(last));
  }

  function inline(text) {
    const held = [];
    let shadow = "", last = 0, m;
    TOKEN.lastIndex = 0;
    while ((m = TOKEN.exec(text)) !== null) {
      shadow += text.slice(last, m.index) + HOLD;
      last = TOKEN.lastIndex;
      if (m[1] !== undefined) held.push("<code>" + escapeHtml(m[1]) + "</code>");
      else if (m[2] !== undefined) {
        held.push('<a href="' + escapeHtml(m[3]) + '" target="_blank" rel="noopener noreferrer">' +
                  codeSpans(m[2]) + "</a>");
      } else held.push('<a class="cite" href="#src-' + m[4] + '" data-cite="' + m[4] + '">[' + m[4] + "]</a>");
    }
    shadow += text.slice(last);
    // Emphasis works on escaped text and only adds tags around it; held tokens are single characters here.
    let s = escapeHtml(shadow);
    s = s.replace(/\*\*([^*\n]+)\*\*/g, "<strong>$1</strong>");
    s = s.replace(/(^|[\s(])_([^_\n]+)_(?=[\s).,;:!?]|$)/g, "$1<em>$2</em>");
    s = s.replace(/(^|[\s(])\*([^*\n]+)\*(?=[\s).,;:!?]|$)/g, "$1<em>$2</em>");
    // Two or more trailing spaces are a line break. Counted by hand: / {2,}$/ retries from every space of a
    // long blank run (50,000 spaces took 26 s).
    let end = s.length;
    while (end > 0 && s.charCodeAt(end - 1) === 32) end--;
    if (s.length - end >= 2) s = s.slice(0, end) + "<br>";
    let k = 0;
    return s.replace(/\uE000/g, function () { return held[k++]; });
  }

  const MAX_QUOTE_DEPTH = 8;  // "> > > …" deeper than this is shown as text, not nested (no runaway recursion)

  function blocks(md, depth) {
    const lines = md.split("\n");
    const out = [];
    let para = [];
    let list = null;       // "ul" | "ol"
    let quote = [];
    let fence = null;

    function flushPara() {
      if (para.length) { out.push("<p>" + para.map(inline).join("\n") + "</p>"); para = []; }
    }
    function flushList() { if (list) { out.push("</" + list + ">"); list = null; } }
    function flushQuote() {
      if (quote.length) { out.push("<blockquote>" + blocks(quote.join("\n"), depth + 1) + "</blockquote>"); quote = []; }
    }
    function flushAll() { flushPara(); flushList(); flushQuote(); }

    for (const line of lines) {
      if (fence !== null) {
        if (/^```/.test(line)) { out.push("<pre><code>" + escapeHtml(fence.join("\n")) + "</code></pre>"); fence = null; }
        else fence.push(line);
        continue;
      }
      if (/^```/.test(line)) { flushAll(); fence = []; continue; }
      const q = depth < MAX_QUOTE_DEPTH ? /^>[ \t]?(.*)$/.exec(line) : null;
      if (q) { flushPara(); flushList(); quote.push(q[1]); continue; }
      flushQuote();
      const h = /^(#{1,4})[ \t]+(.*)$/.exec(line);
      if (h) { flushAll(); out.push("<h" + (h[1].length + 2) + ">" + inline(h[2]) + "</h" + (h[1].length + 2) + ">"); continue; }
      const ul = /^[ \t]*[-*+][ \t]+(.*)$/.exec(line);
      const ol = ul ? null : /^[ \t]*\d{1,9}[.)][ \t]+(.*)$/.exec(line);
      if (ul || ol) {
        flushPara();
        const kind = ul ? "ul" : "ol";
        if (list !== kind) { flushList(); out.push("<" + kind + ">"); list = kind; }
        out.push("<li>" + inline((ul || ol)[1]) + "</li>");
        continue;
      }
      if (!line.trim()) { flushPara(); flushList(); continue; }
      flushList();
      para.push(line);
    }
    if (fence !== null) out.push("<pre><code>" + escapeHtml(fence.join("\n")) + "</code></pre>");
    flushAll();
    return out.join("\n");
  }

  function render(md) {
    // U+E000 is the renderer's own token mark, and NUL and other C0 controls are not text: neither can
    // reach the page from model output.
    const text = String(md == null ? "" : md).replace(/\r\n?/g, "\n")
                   .replace(/[\uE000\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/g, "\uFFFD");
    return blocks(text, 0);
  }

  global.SafeMarkdown = { render: render, escapeHtml: escapeHtml };
})(window);
