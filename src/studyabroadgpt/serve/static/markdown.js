// A small, safe Markdown renderer for the chat page (no dependencies, no build step).
// Safety: the text is HTML-escaped FIRST, then a fixed set of patterns is turned into tags, so model output
// can never inject markup; links are only made for http(s) URLs. Citations like [2] become links to the
// matching entry of the sources panel.
"use strict";

(function (global) {
  function escapeHtml(s) {
    return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
            .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }

  function inline(text) {
    // Code spans and links are cut out first (into numbered placeholders) so that emphasis markers inside
    // them (underscores in URLs, target="_blank") are never formatted.
    const held = [];
    const hold = (html) => { held.push(html); return "\u0000" + (held.length - 1) + "\u0000"; };
    let s = escapeHtml(text).replace(/`([^`\n]+)`/g, function (_, c) { return hold("<code>" + c + "</code>"); });
    // [label](https://url) — the URL is already escaped; only http(s) is allowed.
    s = s.replace(/\[([^\]\n]+)\]\((https?:\/\/[^\s)]+)\)/g, function (_, label, url) {
      return hold('<a href="' + url + '" target="_blank" rel="noopener noreferrer">' + label + "</a>");
    });
    s = s.replace(/\[(\d{1,2})\](?!\()/g, function (_, n) {
      return hold('<a class="cite" href="#src-' + n + '" data-cite="' + n + '">[' + n + "]</a>");
    });
    s = s.replace(/\*\*([^*\n]+)\*\*/g, "<strong>$1</strong>");
    s = s.replace(/(^|[\s(])_([^_\n]+)_(?=[\s).,;:!?]|$)/g, "$1<em>$2</em>");
    s = s.replace(/(^|[\s(])\*([^*\n]+)\*(?=[\s).,;:!?]|$)/g, "$1<em>$2</em>");
    s = s.replace(/ {2,}$/gm, "<br>");
    // Placeholders may nest (a link label holding code), so restore until none is left.
    while (/\u0000\d+\u0000/.test(s)) s = s.replace(/\u0000(\d+)\u0000/g, function (_, i) { return held[+i]; });
    return s;
  }

  function render(md) {
    const lines = md.replace(/\r\n?/g, "\n").split("\n");
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
      if (quote.length) { out.push("<blockquote>" + render(quote.join("\n")) + "</blockquote>"); quote = []; }
    }
    function flushAll() { flushPara(); flushList(); flushQuote(); }

    for (const line of lines) {
      if (fence !== null) {
        if (/^```/.test(line)) { out.push("<pre><code>" + escapeHtml(fence.join("\n")) + "</code></pre>"); fence = null; }
        else fence.push(line);
        continue;
      }
      if (/^```/.test(line)) { flushAll(); fence = []; continue; }
      const q = /^>\s?(.*)$/.exec(line);
      if (q) { flushPara(); flushList(); quote.push(q[1]); continue; }
      flushQuote();
      const h = /^(#{1,4})\s+(.*)$/.exec(line);
      if (h) { flushAll(); out.push("<h" + (h[1].length + 2) + ">" + inline(h[2]) + "</h" + (h[1].length + 2) + ">"); continue; }
      const ul = /^\s*[-*+]\s+(.*)$/.exec(line);
      const ol = /^\s*\d+[.)]\s+(.*)$/.exec(line);
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

  global.SafeMarkdown = { render: render, escapeHtml: escapeHtml };
})(window);
