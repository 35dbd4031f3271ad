// vecgen run viewer. Plain DOM, no dependencies, no network. Every string from a run is inserted with
// textContent (never as HTML). Data: the JSON document in #vecgen-data (see vecgen/reports/view.py).
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("vecgen-data").textContent);
  const app = document.getElementById("app");
  const tip = document.getElementById("tip");
  const PAGE = 100;           // table rows rendered at a time
  const H_MAX = 3.0;          // nats at the top of the colour scale (clamped)
  // viridis (matplotlib), colour-blind safe and monotone in lightness
  const VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58",
    "#b5de2b", "#fde725"];

  // ---- small DOM helpers -------------------------------------------------------------------------
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === "text") e.textContent = v;
        else if (k === "cls") e.className = v;
        else e.setAttribute(k, v === true ? "" : v);
      }
    }
    for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);
    return e;
  }
  const txt = (s) => document.createTextNode(s === null || s === undefined ? "" : String(s));
  const fmt = (x, d = 3) => (x === null || x === undefined || Number.isNaN(x) ? "–" : Number(x).toFixed(d));
  const pct = (x) => (x === null || x === undefined ? "–" : (100 * x).toFixed(1) + "%");
  // a token as shown on a chip: newlines and tabs made visible
  const show = (s) => String(s === null || s === undefined ? "" : s).replace(/\n/g, "↵").replace(/\t/g, "→");
  // a token as shown in a tooltip: exact, quoted
  const quote = (s) => JSON.stringify(String(s === null || s === undefined ? "" : s));

  function colour(h) {
    if (h === null || h === undefined) return "#cccccc";
    const t = Math.max(0, Math.min(1, h / H_MAX));
    return VIRIDIS[Math.min(VIRIDIS.length - 1, Math.floor(t * VIRIDIS.length))];
  }
  function ink(bg) {  // black or white text, whichever contrasts more (WCAG relative luminance)
    const c = [1, 3, 5].map((i) => parseInt(bg.slice(i, i + 2), 16) / 255)
      .map((v) => (v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4)));
    const L = 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
    return (L + 0.05) / 0.05 > 1.05 / (L + 0.05) ? "#000000" : "#ffffff";
  }
  function legend(label) {
    const ramp = el("span", { cls: "ramp", "aria-hidden": "true" });
    ramp.style.background = "linear-gradient(to right, " + VIRIDIS.join(", ") + ")";
    return el("span", { cls: "legend" }, txt(label + ": 0"), ramp, txt("≥ " + H_MAX + " nats"));
  }

  // ---- tooltip ------------------------------------------------------------------------------------
  function showTip(target, build) {
    tip.replaceChildren(...build());
    tip.hidden = false;
    const r = target.getBoundingClientRect();
    const w = tip.offsetWidth, h = tip.offsetHeight;
    let x = window.scrollX + r.left, y = window.scrollY + r.bottom + 6;
    if (r.left + w > window.innerWidth - 8) x = window.scrollX + Math.max(8, window.innerWidth - w - 8);
    if (r.bottom + h + 6 > window.innerHeight && r.top > h + 6) y = window.scrollY + r.top - h - 6;
    tip.style.left = x + "px";
    tip.style.top = y + "px";
  }
  function hideTip() { tip.hidden = true; }
  function bars(pairs) {  // [[token, weight], ...] -> bar rows; bar length = weight (full width = 1)
    return pairs.map(([tok, w]) => {
      const bar = el("span", { cls: "bar" });
      bar.style.width = Math.max(1, Math.round(150 * Math.min(1, w || 0))) + "px";
      return el("div", { cls: "bar-row" }, el("span", { cls: "bar-token", text: quote(tok) }), el("span", null, bar),
        el("span", { cls: "bar-value", text: fmt(w) }));
    });
  }
  function attachTip(node, build) {
    node.setAttribute("aria-describedby", "tip");
    node.addEventListener("mouseenter", () => showTip(node, build));
    node.addEventListener("mouseleave", hideTip);
    node.addEventListener("focus", () => showTip(node, build));
    node.addEventListener("blur", hideTip);
  }
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") hideTip(); });

  // chips in one trace share one tab stop; arrow keys move between them (roving tabindex)
  function roving(container) {
    container.addEventListener("keydown", (ev) => {
      if (ev.key !== "ArrowRight" && ev.key !== "ArrowLeft" && ev.key !== "Home" && ev.key !== "End") return;
      const chips = Array.from(container.querySelectorAll(".chip[data-step]"));
      const i = chips.indexOf(document.activeElement);
      if (i < 0) return;
      let j = ev.key === "ArrowRight" ? i + 1 : ev.key === "ArrowLeft" ? i - 1 : ev.key === "Home" ? 0 : chips.length - 1;
      j = Math.max(0, Math.min(chips.length - 1, j));
      chips[i].tabIndex = -1;
      chips[j].tabIndex = 0;
      chips[j].focus();
      ev.preventDefault();
    });
  }
  function chip(label, h, extra) {
    const bg = colour(h);
    const c = el("span", Object.assign({ cls: "chip", tabindex: "-1", text: show(label) }, extra || {}));
    c.style.background = bg;
    c.style.color = ink(bg);
    return c;
  }

  // ---- shared parts ---------------------------------------------------------------------------------
  function header() {
    const m = DATA.model || {};
    const parts = [el("h1", { text: "vecgen " + DATA.command + " — " + DATA.name })];
    const model = m.name ? m.name + " (" + [m.family, m.device, m.dtype].filter(Boolean).join(", ") + ")" : "";
    parts.push(el("p", { cls: "meta", text: [model, DATA.created && "started " + DATA.created,
      DATA.finished && "finished " + DATA.finished].filter(Boolean).join(" · ") }));
    if (DATA.command_line) parts.push(el("p", { cls: "meta mono", text: DATA.command_line }));
    return parts;
  }
  function footer(figures = true) {
    const parts = [];
    if (figures && DATA.figures && DATA.figures.length) {
      parts.push(el("h2", { text: "Figures" }));
      for (const f of DATA.figures) {
        parts.push(el("figure", null, f.src ? el("img", { src: f.src, alt: f.name, loading: "lazy" }) : null,
          el("figcaption", { cls: "muted", text: f.name + (f.note ? " (" + f.note + ")" : "") })));
      }
    }
    if (DATA.report) parts.push(el("details", null, el("summary", { text: "report.md" }), el("pre", { text: DATA.report })));
    parts.push(el("details", null, el("summary", { text: "configuration and environment" }),
      el("pre", { text: JSON.stringify({ config: DATA.config, model: DATA.model, environment: DATA.environment }, null, 2) })));
    return parts;
  }
  function table(head, rows, opts) {
    const thead = el("thead", null, el("tr", null, ...head.map((h) => el("th", { text: h, scope: "col" }))));
    const tbody = el("tbody", null, ...rows.map((r) => el("tr", null, ...r.map((c) =>
      c instanceof Node ? el("td", null, c) : el("td", { text: c, cls: typeof c === "number" ? "num" : null })))));
    return el("table", opts || null, thead, tbody);
  }

  // ---- think runs -----------------------------------------------------------------------------------
  function renderThink() {
    const T = DATA.think, methods = T.methods, items = T.items, toks = T.tokens, about = T.about || {};
    const out = header();
    const sumRows = methods.filter((m) => T.summary[m]).map((m) => {
      const s = T.summary[m];
      const ci = s.ci95 ? " [" + pct(s.ci95[0]) + ", " + pct(s.ci95[1]) + "]" : "";
      const stops = Object.entries(s.stop_reasons || {}).map(([k, v]) => k + " " + v).join(", ");
      return [m, (s.correct ?? "–") + " / " + (s.n ?? "–"), pct(s.accuracy) + ci, fmt(s.mean_think_tokens, 1), stops];
    });
    out.push(el("h2", { text: "Results" }),
      table(["method", "correct", "accuracy [95% CI]", "mean thinking tokens", "stop reasons"], sumRows, { id: "summary" }));
    if (T.paired.length) {
      out.push(table(["a", "b", "both right", "only a", "only b", "p (exact McNemar)"],
        T.paired.map((p) => [p.a, p.b, p.both, p.only_a, p.only_b, fmt(p.p_value, 4)]), { id: "paired" }));
    }
    // filters
    const outcome = {};
    const filters = [];
    for (const m of methods) {
      const s = el("select", { "data-method": m, "aria-label": m + " outcome" },
        el("option", { value: "any", text: "any" }), el("option", { value: "right", text: "right" }),
        el("option", { value: "wrong", text: "wrong" }));
      outcome[m] = s;
      filters.push(el("label", null, txt(m + " "), s));
    }
    const reasons = [];
    for (const m of methods) {
      const seen = new Set(items.map((it) => it.r[m] && it.r[m].s).filter(Boolean));
      for (const r of Array.from(seen).sort()) reasons.push([m, r]);
    }
    const stopSel = el("select", { id: "stop-filter", "aria-label": "stop reason" }, el("option", { value: "", text: "any" }),
      ...reasons.map(([m, r]) => el("option", { value: m + "|" + r, text: m + ": " + r })));
    const search = el("input", { type: "search", id: "search", placeholder: "id or question text", "aria-label": "search" });
    const count = el("span", { id: "count", "aria-live": "polite" });
    filters.push(el("label", null, txt("stop reason "), stopSel), el("label", null, txt("search "), search), count);
    out.push(el("h2", { text: "Items" }), el("div", { cls: "filters", role: "search" }, ...filters));

    const head = ["#", "id", "question", "reference"];
    for (const m of methods) head.push(m);
    const tbody = el("tbody");
    const itemTable = el("table", { id: "items" },
      el("thead", null, el("tr", null, ...head.map((h) => el("th", { text: h, scope: "col", title: about[h] })))), tbody);
    const pageInfo = el("span", { cls: "muted" });
    const prev = el("button", { text: "◀ previous", id: "prev" }), next = el("button", { text: "next ▶", id: "next" });
    const detail = el("section", { id: "detail", cls: "detail", hidden: true, "aria-live": "polite" });
    out.push(el("div", { cls: "pager" }, prev, pageInfo, next), itemTable, detail);
    out.push(...footer());
    app.replaceChildren(...out);

    let shown = items.map((_, i) => i), page = 0, openIdx = -1;
    function passes(it) {
      for (const m of methods) {
        const want = outcome[m].value;
        if (want === "any") continue;
        const r = it.r[m];
        if (!r || (want === "right") !== (r.c === 1)) return false;
      }
      if (stopSel.value) {
        const [m, reason] = stopSel.value.split("|");
        if (!it.r[m] || it.r[m].s !== reason) return false;
      }
      const q = search.value.trim().toLowerCase();
      if (q && !(it.id.toLowerCase().includes(q) || String(it.q).toLowerCase().includes(q))) return false;
      return true;
    }
    function refilter() {
      shown = [];
      items.forEach((it, i) => { if (passes(it)) shown.push(i); });
      page = 0;
      count.textContent = shown.length + " of " + items.length + " items";
      drawPage();
    }
    function cell(r) {
      if (!r) return el("td", { text: "–" });
      const mark = r.c === 1 ? el("span", { cls: "right", text: "✓ " }) : el("span", { cls: "wrong", text: "✗ " });
      const extra = r.s && r.s !== "none" ? " · " + r.s + " · " + r.n + " tok" : "";
      return el("td", null, mark, txt(r.p === null || r.p === undefined ? "(no answer)" : r.p),
        el("span", { cls: "muted", text: extra }));
    }
    function drawPage() {
      const pages = Math.max(1, Math.ceil(shown.length / PAGE));
      page = Math.max(0, Math.min(page, pages - 1));
      const rows = shown.slice(page * PAGE, (page + 1) * PAGE).map((i) => {
        const it = items[i];
        const tr = el("tr", { cls: "item" + (i === openIdx ? " open" : ""), tabindex: "0", "data-index": String(i),
          "aria-label": "item " + it.id });
        tr.append(el("td", { cls: "num", text: String(i + 1) }), el("td", { cls: "mono", text: it.id }),
          el("td", { cls: "q", text: it.q, title: it.q }), el("td", { text: it.ref }));
        for (const m of methods) tr.append(cell(it.r[m]));
        return tr;
      });
      tbody.replaceChildren(...rows);
      pageInfo.textContent = "page " + (page + 1) + " of " + pages;
      prev.disabled = page === 0;
      next.disabled = page >= pages - 1;
    }
    prev.addEventListener("click", () => { page -= 1; drawPage(); });
    next.addEventListener("click", () => { page += 1; drawPage(); });
    for (const s of Object.values(outcome)) s.addEventListener("change", refilter);
    stopSel.addEventListener("change", refilter);
    search.addEventListener("input", refilter);
    tbody.addEventListener("click", (ev) => {
      const tr = ev.target.closest("tr.item");
      if (tr) openItem(Number(tr.dataset.index));
    });
    tbody.addEventListener("keydown", (ev) => {
      const tr = ev.target.closest("tr.item");
      if (!tr) return;
      if (ev.key === "Enter" || ev.key === " ") { openItem(Number(tr.dataset.index)); ev.preventDefault(); }
      else if (ev.key === "ArrowDown" && tr.nextElementSibling) { tr.nextElementSibling.focus(); ev.preventDefault(); }
      else if (ev.key === "ArrowUp" && tr.previousElementSibling) { tr.previousElementSibling.focus(); ev.preventDefault(); }
    });
    detail.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") {
        const row = tbody.querySelector('tr.item[data-index="' + openIdx + '"]');
        detail.hidden = true;
        if (row) row.focus();
      }
    });

    const milli = (x) => (x === null || x === undefined ? null : x / 1000);  // the payload stores thousandths
    function stepTip(m, r, j) {
      return () => {
        const pairs = (r.k[j] || []).map((t, q) => [toks[t], milli(r.w[j][q])]);
        const soft = T.kinds[m] === "mixture";
        return [el("div", { cls: "tip-head", text: "step " + (j + 1) + ": " + quote(toks[r.t[j]]) }),
          el("div", { cls: "muted", text: r.x && r.x[j] ? "explicit step: its top-1 token was fed (mixture weights shown)" : soft ? "mixture weights (fed)" : "model distribution" }),
          ...bars(pairs),
          el("div", { cls: "tip-meta", text: "entropy " + fmt(milli(r.h[j])) + " nats · mixture entropy " + fmt(milli(r.m[j])) + " nats" })];
      };
    }
    function trace(m, r) {
      const box = el("div", { cls: "chips", "data-method": m });
      if (r.t) {
        const soft = T.kinds[m] === "mixture";
        r.t.forEach((t, j) => {
          const c = chip(toks[t], milli(soft ? r.m[j] : r.h[j]), { "data-step": String(j) });
          if (r.x && r.x[j]) c.classList.add("explicit");
          attachTip(c, stepTip(m, r, j));
          box.append(c);
        });
        const first = box.querySelector(".chip");
        if (first) first.tabIndex = 0;
        roving(box);
      } else if (r.tr) {
        box.append(el("span", { cls: "text", text: r.tr }));
      }
      if (r.f) box.append(el("span", { cls: "chip forced", title: "forced marker", text: show(r.f) }));
      return box;
    }
    function openItem(i) {
      openIdx = i;
      const it = items[i];
      for (const tr of tbody.querySelectorAll("tr.item")) tr.classList.toggle("open", Number(tr.dataset.index) === i);
      const cols = methods.filter((m) => it.r[m]).map((m) => {
        const r = it.r[m];
        const mark = r.c === 1 ? el("span", { cls: "right", text: "✓ right" }) : el("span", { cls: "wrong", text: "✗ wrong" });
        const info = [r.s !== "none" ? "stop: " + r.s : null, r.n ? r.n + " thinking tokens" : null,
          r.H !== null && r.H !== undefined ? "mean entropy " + fmt(r.H) + " nats" : null].filter(Boolean).join(" · ");
        const soft = T.kinds[m] === "mixture";
        return el("div", { cls: "col", "data-method": m },
          el("h3", { title: about[m] }, txt(m + " — "), mark), el("p", { cls: "meta", text: info }),
          r.n ? legend((soft ? "chip colour = mixture entropy" : "chip colour = entropy") + (r.x ? " · underlined = explicit step (its token was fed)" : "")) : null,
          r.n ? trace(m, r) : null,
          el("p", null, el("strong", { text: "answer " }), el("span", { cls: "text answer", text: r.a })),
          el("p", { cls: "meta", text: "extracted: " + (r.p === null || r.p === undefined ? "(none)" : r.p) }));
      });
      detail.replaceChildren(
        el("h2", { text: "Item " + it.id }), el("p", { cls: "text", text: it.q }),
        el("p", null, el("strong", { text: "reference: " }), txt(it.ref)),
        el("div", { cls: "cols" }, ...cols),
        el("p", { cls: "muted", text: "Esc closes · ← → move between chips · hover or focus a chip for its weights" }));
      detail.hidden = false;
      detail.scrollIntoView({ block: "nearest" });
    }
    refilter();
  }

  // ---- concept runs ---------------------------------------------------------------------------------
  function vectorTip(v, i) {
    return () => {
      const nc = v.nearest_cosine || {}, nl = v.nearest_l2 || {};
      return [el("div", { cls: "tip-head", text: "concept token " + (i + 1) + ": " + quote(v.token) }),
        el("div", { cls: "muted", text: "top weights" }), ...bars(v.top || []),
        el("div", { cls: "tip-meta", text: "entropy of the weights " + fmt(v.entropy) + " nats · of the distribution " +
          fmt(v.dist_entropy) + " nats" }),
        el("div", { cls: "tip-meta", text: "nearest (cosine) " + quote(nc.token) + " " + fmt(nc.value) }),
        el("div", { cls: "tip-meta", text: "nearest (L2) " + quote(nl.token) + " " + fmt(nl.value) }),
        el("div", { cls: "tip-meta", text: "off-manifold distance " + fmt(v.manifold_distance) + " (" +
          fmt(v.relative_manifold_distance) + " × mean token norm) · norm " + fmt(v.norm) })];
    };
  }
  function renderConcept() {
    const out = header();
    const recs = DATA.concept.records;
    out.push(el("h2", { text: "Concept tokens" }), el("p", null, legend("chip colour = entropy of the weights")),
      el("p", { cls: "muted", text: recs.length + (recs.length === 1 ? " record" : " records") + " · hover or focus a chip for its weights; ← → move between chips" }));
    const list = el("div", { id: "concepts" });
    out.push(list, ...footer());
    app.replaceChildren(...out);
    // cards are built in slices so that a large run shows its first records at once
    let k = 0;
    function more() {
      const end = Math.min(recs.length, k + 50);
      for (; k < end; k++) {
        const rec = recs[k];
        const box = el("div", { cls: "chips" });
        rec.vectors.forEach((v, i) => {
          const c = chip(v.token, v.entropy, { "data-step": String(i) });
          c.classList.add("big");
          attachTip(c, vectorTip(v, i));
          box.append(c);
        });
        const first = box.querySelector(".chip");
        if (first) first.tabIndex = 0;
        roving(box);
        const tr = Object.entries(rec.translations).map(([m, t]) => [m, el("span", { cls: "text", text: t })]);
        list.append(el("div", { cls: "card concept", "data-record": String(k) },
          el("h3", null, txt("“" + rec.prompt + "”"), el("span", { cls: "muted", text: " · " + rec.model + " · N = " + rec.n })),
          el("div", { cls: "concept-body" }, box, tr.length ? table(["translation", "text"], tr) : el("span"))));
      }
      if (k < recs.length) setTimeout(more, 0);
    }
    more();
  }

  // ---- soft-prompt runs -----------------------------------------------------------------------------
  function renderSoftprompt() {
    const S = DATA.softprompt, out = header();
    out.push(el("p", { cls: "meta", text: "status " + S.status + " · " + S.episodes_done + " episodes" }));
    const fam = Object.entries(S.per_family).map(([f, r]) => [f, pct(r.baseline), pct(r.initial), pct(r.final)]);
    if (fam.length) out.push(el("h2", { text: "Held-out accuracy" }),
      table(["family", "no soft prompt", "episode 0", "last eval"], fam, { id: "families" }));
    if (DATA.figures.length) {
      out.push(el("h2", { text: "Learning curves" }));
      for (const f of DATA.figures) if (f.src) out.push(el("figure", null, el("img", { src: f.src, alt: f.name })));
    }
    if (S.vectors.length) {
      out.push(el("h2", { text: "Nearest tokens of each learned vector (cosine)" }));
      out.push(table(["vector", "norm (× mean)", "off-manifold (× mean)", "nearest tokens"], S.vectors.map((v) => {
        const box = el("span", { cls: "chips" });
        for (const n of v.nearest || []) {
          const c = chip(n.token, null);
          c.title = "cosine " + fmt(n.cosine);
          box.append(c, el("span", { cls: "muted", text: fmt(n.cosine, 2) + " " }));
        }
        return [v.index + 1, fmt(v.relative_norm, 2), fmt(v.relative_manifold_distance, 2), box];
      }), { id: "vectors" }));
    }
    out.push(...footer(false));
    app.replaceChildren(...out);
  }

  function renderOther() {
    const out = header();
    out.push(el("h2", { text: "Results" }), el("pre", { text: JSON.stringify(DATA.results, null, 2) }), ...footer());
    app.replaceChildren(...out);
  }

  if (DATA.think) renderThink();
  else if (DATA.concept) renderConcept();
  else if (DATA.softprompt) renderSoftprompt();
  else renderOther();
  document.body.dataset.ready = "1";
})();
