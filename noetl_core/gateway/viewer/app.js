// The NoETL execution viewer: plain JavaScript, no library, no build step.
//
// Reads go to the gateway's /v1 routes with the viewer's HttpOnly cookie (set by the
// one-time login link `noetl serve` prints); the page never sees or sends that token,
// and no token is ever put in a URL. An execution's page follows its Server-Sent Events
// through fetch() and a ReadableStream (never EventSource), resuming with Last-Event-ID.
// Starting a playbook needs an invoke token the user pastes: it stays in this page's
// memory and goes only in the Authorization header of that POST.
"use strict";

(function () {
  const state = {
    invokeToken: null, // pasted on the catalog page; memory only
    stream: null, // AbortController of the followed execution's events
    timers: [],
    selected: null, // {entryId, step}
    open: {}, // timeline group (loop command, "child:<id>") -> expanded
    children: {}, // child execution id -> {blocks, status}, for its parent's timeline
    loading: {}, // child execution id -> a fetch under way
  };
  const SVG = "http://www.w3.org/2000/svg";
  // where the gateway is mounted: "" on `noetl serve`, a prefix behind a path-routed URL
  const BASE = location.pathname.replace(/\/viewer\/.*$/, "");
  const main = document.getElementById("main");
  const live = document.getElementById("live");

  // -- small helpers ----------------------------------------------------------------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, String(v));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function badge(status) {
    return h("span", { class: "badge " + (status || "pending") }, status || "pending");
  }

  function seconds(sec) {
    if (sec === null || sec === undefined || isNaN(sec)) return "";
    if (sec < 1) return Math.round(sec * 1000) + " ms";
    if (sec < 120) return sec.toFixed(sec < 10 ? 2 : 1) + " s";
    return Math.floor(sec / 60) + " min " + Math.round(sec % 60) + " s";
  }

  function when(ts) {
    if (ts === null || ts === undefined) return "";
    const d = typeof ts === "number" ? new Date(ts * 1000) : new Date(ts);
    return d.toLocaleString();
  }

  function pretty(value) {
    return h("pre", {}, JSON.stringify(value, null, 2));
  }

  class HttpError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(path, options) {
    const answer = await fetch(BASE + path, Object.assign({ credentials: "same-origin" }, options || {}));
    let body = null;
    try {
      body = await answer.json();
    } catch (e) {
      body = null;
    }
    if (!answer.ok) {
      const message = body && body.error ? body.error.message : answer.statusText;
      throw new HttpError(answer.status, message);
    }
    return body;
  }

  function showError(err) {
    const box = h("div", { class: "error-box", id: "error" });
    if (err.status === 401) {
      box.append(
        h("strong", {}, "Not signed in. "),
        "Open the one-time login link that ",
        h("code", {}, "noetl serve"),
        " printed when it started (it is valid for 5 minutes and works once), or paste a token with the read scope (",
        h("code", {}, "noetl token create --scope read"),
        "):",
        signInForm(),
      );
    } else {
      box.append(h("strong", {}, err.status ? "Error " + err.status + ": " : "Error: "), err.message);
    }
    return box;
  }

  // A pasted read token is sent once, in the Authorization header of POST
  // /viewer/session; the gateway answers with the HttpOnly cookie. The page keeps nothing.
  function signInForm() {
    const input = h("input", { type: "password", placeholder: "read token", autocomplete: "off", id: "sign-in-token" });
    const message = h("span", { class: "muted" });
    return h(
      "form",
      {
        id: "sign-in",
        onsubmit: async (ev) => {
          ev.preventDefault();
          const token = input.value.trim();
          input.value = "";
          if (!token) return;
          try {
            await api("/viewer/session", {
              method: "POST",
              headers: { "Content-Type": "application/json", Authorization: "Bearer " + token },
              body: "{}",
            });
            route();
          } catch (err) {
            message.textContent = "refused (" + (err.status || "") + "): " + err.message;
          }
        },
      },
      input,
      " ",
      h("button", { type: "submit" }, "Sign in"),
      " ",
      message,
    );
  }

  async function signOut(ev) {
    ev.preventDefault();
    try {
      await api("/viewer/session", { method: "DELETE", headers: { "Content-Type": "application/json" } });
    } catch (err) {
      /* already signed out */
    }
    route();
  }

  function stopFollowing() {
    if (state.stream) state.stream.abort();
    state.stream = null;
    for (const t of state.timers) clearInterval(t);
    state.timers = [];
    live.hidden = true;
  }

  function setNav(which) {
    for (const id of ["nav-executions", "nav-catalog"]) {
      document.getElementById(id).classList.toggle("current", id === which);
    }
  }

  // -- the list of executions -------------------------------------------------------
  function listPage(params) {
    setNav("nav-executions");
    const path = h("input", { name: "path", placeholder: "playbook path", value: params.get("path") || "" });
    const status = h(
      "select",
      { name: "status" },
      ["", "running", "completed", "failed", "cancelled"].map((v) =>
        h("option", { value: v, selected: v === (params.get("status") || "") }, v || "any status"),
      ),
    );
    const body = h("tbody", { id: "executions" });
    const form = h(
      "form",
      {
        class: "filters",
        onsubmit: (ev) => {
          ev.preventDefault();
          const q = new URLSearchParams();
          if (path.value) q.set("path", path.value);
          if (status.value) q.set("status", status.value);
          location.hash = "#/?" + q.toString();
        },
      },
      path,
      status,
      h("button", { type: "submit" }, "Filter"),
    );
    const errors = h("div");
    main.replaceChildren(
      h("h1", {}, "Executions"),
      form,
      errors,
      h(
        "table",
        { class: "executions" },
        h("thead", {}, h("tr", {}, ["execution", "playbook", "status", "started", "by"].map((t) => h("th", {}, t)))),
        body,
      ),
    );
    async function load() {
      const q = new URLSearchParams({ limit: "50" });
      if (params.get("path")) q.set("path", params.get("path"));
      if (params.get("status")) q.set("status", params.get("status"));
      try {
        const data = await api("/v1/executions?" + q.toString());
        errors.replaceChildren();
        body.replaceChildren(
          ...data.executions.map((e) =>
            h(
              "tr",
              {
                class: "clickable",
                "data-execution": e.execution_id,
                onclick: () => (location.hash = "#/e/" + encodeURIComponent(e.execution_id)),
              },
              h("td", { class: "mono" }, h("a", { href: "#/e/" + encodeURIComponent(e.execution_id) }, e.execution_id)),
              h("td", {}, e.path + (e.version ? " v" + e.version : "")),
              h("td", {}, badge(e.status)),
              h("td", {}, when(e.started_at)),
              h("td", {}, e.subject || ""),
            ),
          ),
        );
        if (!data.executions.length) body.append(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No executions.")));
      } catch (err) {
        errors.replaceChildren(showError(err));
      }
    }
    load();
    state.timers.push(setInterval(load, 3000));
  }

  // -- one execution ----------------------------------------------------------------
  function executionPage(id) {
    setNav("nav-executions");
    const summary = h("div", { class: "summary", id: "summary" });
    const graphBox = h("div", { class: "panel graph", id: "graph" });
    const timeline = h("div", { class: "panel timeline", id: "timeline" });
    const details = h("div", { class: "panel details", id: "details" }, h("p", { class: "muted" }, "Click a step or a block for its inputs, output and error."));
    const errors = h("div");
    main.replaceChildren(
      h("h1", {}, "Execution ", h("span", { class: "mono" }, id)),
      errors,
      summary,
      h("div", { class: "layout" }, h("div", {}, h("h2", {}, "Steps"), graphBox, h("h2", {}, "Blocks"), timeline), h("div", {}, h("h2", {}, "Details"), details)),
    );
    let latest = null;
    let pending = null;
    let loading = false;

    async function refresh() {
      if (loading) {
        pending = pending || setTimeout(() => ((pending = null), refresh()), 150);
        return;
      }
      loading = true;
      try {
        latest = await api("/v1/executions/" + encodeURIComponent(id) + "/graph");
        errors.replaceChildren();
        drawSummary(summary, latest);
        drawGraph(graphBox, latest, (step) => selectStep(step));
        drawTimeline(timeline, latest, (block) => selectBlock(block));
      } catch (err) {
        errors.replaceChildren(showError(err));
      } finally {
        loading = false;
      }
    }

    function soon() {
      if (!pending) pending = setTimeout(() => ((pending = null), refresh()), 200);
    }

    function selectStep(step) {
      if (!latest) return;
      const blocks = latest.blocks.filter((b) => b.step === step.name && b.entry_id && b.kind !== "loop");
      const block = blocks[blocks.length - 1] || latest.blocks.filter((b) => b.step === step.name && b.entry_id).pop();
      state.selected = { step: step.name, entryId: block ? block.entry_id : null };
      if (block) showEntry(block.entry_id);
      else {
        const why =
          step.status === "running"
            ? "Running: nothing recorded yet."
            : step.status === "queued"
              ? "Queued: no worker has taken it yet."
              : "Nothing recorded for this step.";
        details.replaceChildren(h("h3", {}, step.name), h("p", { class: "muted" }, why), pretty(step));
      }
      drawGraph(graphBox, latest, (st) => selectStep(st));
      drawTimeline(timeline, latest, (b) => selectBlock(b));
    }

    function selectBlock(block) {
      state.selected = { step: block.step, entryId: block.entry_id };
      if (block.entry_id) showEntry(block.entry_id);
      else
        details.replaceChildren(
          h("p", { class: "muted" }, block.status === "queued" ? "This block is queued: no worker has taken it yet." : "This block is running: nothing recorded yet."),
        );
      drawGraph(graphBox, latest, (st) => selectStep(st));
      drawTimeline(timeline, latest, (b) => selectBlock(b));
    }

    async function showEntry(entryId) {
      try {
        const e = await api("/v1/executions/" + encodeURIComponent(id) + "/entries/" + encodeURIComponent(entryId));
        const items = [
          ["step", e.step + (e.index !== undefined ? " [" + e.index + "]" : "")],
          ["status", badge(e.status === "continue" ? "waiting" : e.status || e.kind)],
          ["attempt", e.attempt],
          ["started", when(e.started_at)],
          ["recorded", when(e.ts)],
        ];
        if (e.started_at) items.push(["took", seconds(e.ts - e.started_at)]);
        if (e.wait) items.push(["waits for", e.wait + (e.due ? " (due " + when(e.due) + ")" : "")]);
        if (e.child_execution_id)
          items.push(["child execution", h("a", { href: "#/e/" + encodeURIComponent(e.child_execution_id), class: "mono" }, e.child_execution_id)]);
        const list = h("dl", {});
        for (const [k, v] of items) list.append(h("dt", {}, k), h("dd", {}, v));
        details.replaceChildren(h("h3", {}, e.step || e.kind), list);
        if (e.input !== undefined && e.input !== null) details.append(h("dt", {}, "inputs (as declared)"), pretty(e.input));
        if (e.args !== undefined) details.append(h("dt", {}, "arc arguments"), pretty(e.args));
        if (e.output !== undefined) details.append(h("dt", {}, "output"), pretty(e.output));
        if (e.output_error) details.append(h("dt", {}, "output"), h("p", { class: "error-box" }, e.output_error));
        if (e.meta && e.meta.log) details.append(h("dt", {}, "stdout"), h("pre", { class: "stdout" }, e.meta.log));
        if (e.error) details.append(h("dt", {}, "error"), pretty(e.error));
        if (e.retry) details.append(h("dt", {}, "retry"), pretty(e.retry));
        details.append(h("dt", {}, "events"), h("p", { class: "mono" }, e.events.join(", ")));
      } catch (err) {
        details.replaceChildren(showError(err));
      }
    }

    refresh().then(() => follow(id, soon));
  }

  function drawSummary(box, g) {
    const end = g.ended_at || g.now;
    const parts = [
      h("span", {}, h("strong", {}, g.path)),
      h("span", { id: "execution-status" }, badge(g.status)),
      h("span", { class: "muted" }, "started " + when(g.started_at)),
      h("span", { class: "muted" }, (g.ended_at ? "took " : "running for ") + seconds(end - g.started_at)),
      g.parent_execution_id
        ? h("span", {}, "parent ", h("a", { href: "#/e/" + encodeURIComponent(g.parent_execution_id), class: "mono" }, g.parent_execution_id))
        : null,
    ];
    box.replaceChildren(...parts.filter(Boolean));
    if (g.error) box.append(h("div", { class: "error-box" }, g.error.message || JSON.stringify(g.error)));
    if (g.result !== undefined) box.append(h("div", { id: "result" }, h("span", { class: "muted" }, "result"), pretty(g.result)));
    if (g.result_error) box.append(h("div", { class: "error-box" }, "result: " + g.result_error));
  }

  // Layers: each step one layer below the deepest step with a forward arc to it.
  function layout(g) {
    const names = g.steps.map((st) => st.name);
    const forward = g.arcs.filter((a) => !a.back);
    const depth = Object.fromEntries(names.map((n) => [n, 0]));
    const preds = Object.fromEntries(names.map((n) => [n, []]));
    for (const a of forward) if (preds[a.to]) preds[a.to].push(a.from);
    const seen = {};
    function level(n, path) {
      if (seen[n] !== undefined) return seen[n];
      if (path.has(n)) return 0;
      path.add(n);
      let d = 0;
      for (const p of preds[n]) d = Math.max(d, level(p, path) + 1);
      path.delete(n);
      return (seen[n] = d);
    }
    for (const n of names) depth[n] = level(n, new Set());
    const layers = [];
    for (const n of names) (layers[depth[n]] = layers[depth[n]] || []).push(n);
    return { depth, layers: layers.map((l) => l || []) };
  }

  const NODE_W = 170;
  const NODE_H = 54;
  const GAP_X = 36;
  const GAP_Y = 46;

  function drawGraph(box, g, onPick) {
    const { layers } = layout(g);
    const widest = Math.max(1, ...layers.map((l) => l.length));
    const width = widest * (NODE_W + GAP_X) + GAP_X + 60;
    const height = layers.length * (NODE_H + GAP_Y) + GAP_Y;
    const pos = {};
    layers.forEach((layer, row) => {
      const rowWidth = layer.length * (NODE_W + GAP_X) - GAP_X;
      const left = (width - 60 - rowWidth) / 2;
      layer.forEach((name, i) => {
        pos[name] = { x: left + i * (NODE_W + GAP_X), y: GAP_Y / 2 + row * (NODE_H + GAP_Y) };
      });
    });
    const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "step graph" });
    svg.append(
      s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }))),
    );
    for (const a of g.arcs) {
      const p = pos[a.from];
      const q = pos[a.to];
      if (!p || !q) continue;
      let d;
      if (a.back || q.y <= p.y) {
        const x1 = p.x + NODE_W;
        const y1 = p.y + NODE_H / 2;
        const x2 = q.x + NODE_W;
        const y2 = q.y + NODE_H / 2;
        const bulge = Math.max(x1, x2) + 50;
        d = `M ${x1} ${y1} C ${bulge} ${y1}, ${bulge} ${y2}, ${x2 + 2} ${y2}`;
      } else {
        const x1 = p.x + NODE_W / 2;
        const y1 = p.y + NODE_H;
        const x2 = q.x + NODE_W / 2;
        const y2 = q.y - 2;
        const my = (y1 + y2) / 2;
        d = `M ${x1} ${y1} C ${x1} ${my}, ${x2} ${my}, ${x2} ${y2}`;
      }
      svg.append(s("path", { d, class: "arc" + (a.back ? " back" : ""), "marker-end": "url(#arrow)" }));
    }
    const selected = state.selected && state.selected.step;
    for (const st of g.steps) {
      const p = pos[st.name];
      if (!p) continue;
      const counts = [];
      if (st.loop) {
        const total = st.loop_length;
        counts.push("loop " + (st.iterations_done || 0) + "/" + (total === undefined || total === null ? "?" : total));
      }
      if (st.attempts > 1) counts.push("attempt " + st.attempts);
      if (st.retries) counts.push(st.retries + " retr" + (st.retries > 1 ? "ies" : "y"));
      if (st.children && st.children.length) counts.push(st.children.length + " child" + (st.children.length > 1 ? "ren" : ""));
      if (st.failed && st.status !== "failed") counts.push(st.failed + " failed");
      const sub = [st.tool + (st.child_path ? " " + st.child_path : ""), st.status].concat(counts).join(" · ");
      const group = s(
        "g",
        {
          class: "node " + st.status + (selected === st.name ? " selected" : ""),
          transform: `translate(${p.x},${p.y})`,
          "data-step": st.name,
          "data-status": st.status,
          onclick: () => onPick(st),
        },
        s("title", {}, st.name + ": " + st.status + (st.desc ? " — " + st.desc : "")),
        s("rect", { width: NODE_W, height: NODE_H, rx: 8, ry: 8 }),
        s("text", { x: 10, y: 21, class: "name" }, st.name.length > 22 ? st.name.slice(0, 21) + "…" : st.name),
        s("text", { x: 10, y: 40, class: "sub" }, sub.length > 30 ? sub.slice(0, 29) + "…" : sub),
      );
      svg.append(group);
    }
    box.replaceChildren(svg);
  }

  // Loop iterations sit under their loop's row and a sub-playbook's blocks under its
  // step's row, each group collapsible (a loop of more than COLLAPSE_AT iterations
  // starts collapsed, a child always does); the group's row carries its counts.
  const COLLAPSE_AT = 20;

  function isOpen(key, fallback) {
    return state.open[key] === undefined ? fallback : state.open[key];
  }

  function drawTimeline(box, g, onPick) {
    const blocks = g.blocks;
    if (!blocks.length) {
      box.replaceChildren(h("p", { class: "muted" }, "No blocks yet."));
      return;
    }
    const redraw = () => drawTimeline(box, g, onPick);
    const t0 = g.started_at;
    const t1 = Math.max(g.ended_at || g.now, ...blocks.map((b) => b.end || g.now));
    const span = Math.max(t1 - t0, 0.001);
    const loops = new Set(blocks.filter((b) => b.kind === "loop").map((b) => b.command_id));
    const iterations = {}; // loop command -> its iteration blocks
    for (const b of blocks) {
      if (b.loop_command && loops.has(b.loop_command)) (iterations[b.loop_command] = iterations[b.loop_command] || []).push(b);
    }

    function toggle(key, open) {
      return h(
        "button",
        {
          type: "button",
          class: "tl-toggle",
          "aria-expanded": open ? "true" : "false",
          "data-group": key,
          onclick: (ev) => {
            ev.stopPropagation();
            state.open[key] = !open;
            redraw();
          },
        },
        open ? "▾" : "▸",
      );
    }

    function row(b, depth, extra) {
      const status = (extra && extra.status) || b.status;
      const end = (extra && extra.end) || b.end || (g.ended_at || g.now);
      const left = ((b.start - t0) / span) * 100;
      const width = Math.max(((end - b.start) / span) * 100, 0.3);
      const bar = h("div", { class: "tl-bar " + status, title: status });
      bar.style.left = Math.max(0, Math.min(left, 100)) + "%";
      bar.style.width = width + "%";
      const label = (b.step || "?") + (b.index !== null && b.index !== undefined ? " [" + b.index + "]" : "") + (b.kind === "loop" ? " (loop)" : "");
      const info = [status, b.end || status === "running" || status === "queued" ? seconds(end - b.start) : ""];
      if (b.attempt > 1) info.push("attempt " + b.attempt);
      if (b.wait && b.status === "waiting") info.push("waits: " + b.wait);
      if (extra && extra.counts) info.push(extra.counts);
      const said = info.filter(Boolean).join(" · ");
      const selected = state.selected && state.selected.entryId && state.selected.entryId === b.entry_id;
      const labelBox = h("div", { class: "tl-label" }, extra && extra.toggle ? extra.toggle : null, label);
      labelBox.style.paddingLeft = depth * 14 + "px";
      return h(
        "div",
        {
          class: "tl-row" + (selected ? " selected" : "") + (depth ? " nested" : ""),
          "data-entry": b.entry_id || "",
          "data-status": status,
          "data-step": b.step || "",
          onclick: () => (extra && extra.onclick ? extra.onclick() : onPick(b)),
        },
        labelBox,
        h("div", { class: "tl-track" }, bar),
        h("div", { class: "tl-info", title: said }, said),
      );
    }

    const rows = [];
    for (const b of blocks) {
      if (b.loop_command && loops.has(b.loop_command)) continue; // drawn under its loop
      if (b.kind === "loop") {
        const its = iterations[b.command_id] || [];
        const done = its.filter((x) => ["ok", "error", "skipped"].includes(x.status)).length;
        const failed = its.filter((x) => x.status === "error").length;
        const open = isOpen(b.command_id, its.length <= COLLAPSE_AT);
        const counts = done + "/" + (b.length === undefined || b.length === null ? its.length : b.length) + " done" + (failed ? ", " + failed + " failed" : "");
        // the loop's bar spans its iterations: to the last one's end, or now while one runs
        const running = its.some((x) => !x.end);
        const last = running ? g.ended_at || g.now : Math.max(b.end || b.start, ...its.map((x) => x.end));
        const failedAll = b.status === "error" || failed;
        const status = running && !g.ended_at ? "running" : failedAll ? "error" : b.status;
        rows.push(row(b, 0, { toggle: its.length ? toggle(b.command_id, open) : null, counts, end: last, status }));
        if (open) for (const x of its) rows.push(row(x, 1));
        continue;
      }
      if (b.child_execution_id) {
        const key = "child:" + b.child_execution_id;
        const open = isOpen(key, false);
        const child = state.children[b.child_execution_id];
        const counts = child ? child.blocks.length + " child block" + (child.blocks.length === 1 ? "" : "s") + ", " + child.status : "child execution";
        rows.push(row(b, 0, { toggle: toggle(key, open), counts }));
        if (open) {
          if (child) {
            for (const x of child.blocks) {
              const r = row(x, 1, { onclick: () => (location.hash = "#/e/" + encodeURIComponent(b.child_execution_id)) });
              r.classList.add("child");
              rows.push(r);
            }
          }
          if (!child || child.status === "running") loadChild(b.child_execution_id, redraw);
        }
        continue;
      }
      rows.push(row(b, 0));
    }
    if (g.blocks_omitted) {
      const cut = Math.floor(rows.length / 2);
      rows.splice(cut, 0, h("p", { class: "muted" }, g.blocks_omitted + " more blocks not shown"));
    }
    box.replaceChildren(...rows);
  }

  // a child execution's blocks, for its parent's timeline (fetched once it is opened,
  // again while it runs)
  async function loadChild(childId, redraw) {
    if (state.loading[childId]) return;
    state.loading[childId] = true;
    try {
      const child = await api("/v1/executions/" + encodeURIComponent(childId) + "/graph");
      const before = state.children[childId];
      state.children[childId] = { blocks: child.blocks, status: child.status };
      if (!before || before.status !== child.status || before.blocks.length !== child.blocks.length) redraw();
    } catch (err) {
      state.children[childId] = { blocks: [], status: "unreadable (" + (err.status || "") + ")" };
      redraw();
    } finally {
      setTimeout(() => (state.loading[childId] = false), 1000);
    }
  }

  // -- live updates: the events stream through fetch() ------------------------------
  async function follow(id, changed) {
    const controller = new AbortController();
    state.stream = controller;
    let lastId = "0";
    let ended = false;
    let failures = 0;
    while (!ended && !controller.signal.aborted) {
      try {
        const headers = { Accept: "text/event-stream" };
        if (lastId !== "0") headers["Last-Event-ID"] = lastId;
        const answer = await fetch(BASE + "/v1/executions/" + encodeURIComponent(id) + "/events", {
          credentials: "same-origin",
          headers,
          signal: controller.signal,
        });
        if (!answer.ok || !answer.body) throw new HttpError(answer.status, answer.statusText);
        live.hidden = false;
        live.classList.remove("off");
        failures = 0;
        const reader = answer.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const chunk = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            const event = { id: null, name: "message", data: "" };
            for (const line of chunk.split("\n")) {
              if (line.startsWith(":")) continue;
              const colon = line.indexOf(":");
              const field = colon < 0 ? line : line.slice(0, colon);
              const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
              if (field === "id") event.id = value;
              else if (field === "event") event.name = value;
              else if (field === "data") event.data += (event.data ? "\n" : "") + value;
            }
            if (event.id) lastId = event.id;
            if (event.data) changed();
            if (event.name === "terminal") ended = true;
          }
        }
      } catch (err) {
        if (controller.signal.aborted) break;
        if (err.status === 401 || err.status === 403 || err.status === 404) break;
        failures += 1;
      }
      if (!ended && !controller.signal.aborted) {
        live.classList.add("off");
        await new Promise((r) => setTimeout(r, Math.min(500 * 2 ** failures, 5000)));
      }
    }
    if (state.stream === controller) {
      live.classList.add("off");
      live.textContent = ended ? "ended" : "live";
      changed();
    }
  }

  // -- the catalog: start a playbook with an invoke token ---------------------------
  function catalogPage() {
    setNav("nav-catalog");
    const errors = h("div");
    const list = h("div", { id: "catalog" });
    const tokenInput = h("input", { type: "password", placeholder: "paste an invoke token to start playbooks", autocomplete: "off", id: "invoke-token" });
    if (state.invokeToken) tokenInput.value = state.invokeToken;
    tokenInput.addEventListener("input", () => {
      const had = !!state.invokeToken;
      state.invokeToken = tokenInput.value.trim() || null;
      if (had !== !!state.invokeToken) render(); // the forms come or go; what was typed stays
    });
    main.replaceChildren(
      h("h1", {}, "Catalog"),
      h("div", { class: "token-box" }, tokenInput, h("span", { class: "muted" }, "kept in this page's memory only; sent as a bearer header")),
      errors,
      list,
    );
    let playbooks = [];
    const drafts = {}; // path -> the workload typed so far, kept across re-renders
    function render() {
      list.replaceChildren(
        ...playbooks.map((p) => {
          const workload = h("textarea", { placeholder: "{}", "aria-label": "workload for " + p.path });
          workload.value = drafts[p.path] !== undefined ? drafts[p.path] : "{}";
          workload.addEventListener("input", () => (drafts[p.path] = workload.value));
          const message = h("span", { class: "muted" });
          const button = h("button", { type: "submit", disabled: !state.invokeToken }, "Start");
          const form = h(
            "form",
            {
              onsubmit: async (ev) => {
                ev.preventDefault();
                let parsed;
                try {
                  parsed = JSON.parse(workload.value || "{}");
                } catch (e) {
                  message.textContent = "the workload is not JSON: " + e.message;
                  return;
                }
                try {
                  const started = await api("/v1/executions", {
                    method: "POST",
                    headers: { "Content-Type": "application/json", Authorization: "Bearer " + state.invokeToken },
                    body: JSON.stringify({ path: p.path, workload: parsed }),
                  });
                  location.hash = "#/e/" + encodeURIComponent(started.execution_id);
                } catch (err) {
                  message.textContent = "refused (" + (err.status || "") + "): " + err.message;
                }
              },
            },
            workload,
            h("div", {}, button, " ", message),
          );
          return h(
            "div",
            { class: "panel catalog-item", "data-path": p.path },
            h("strong", {}, p.path),
            " ",
            h("span", { class: "muted" }, "versions " + p.versions.join(", ")),
            " ",
            h("a", { href: "#/?path=" + encodeURIComponent(p.path) }, "executions"),
            state.invokeToken ? form : null,
          );
        }),
      );
      if (!playbooks.length) list.append(h("p", { class: "muted" }, "No playbooks registered."));
    }
    api("/v1/catalog")
      .then((data) => {
        playbooks = data.playbooks;
        render();
      })
      .catch((err) => errors.replaceChildren(showError(err)));
  }

  // -- routing ----------------------------------------------------------------------
  function route() {
    stopFollowing();
    live.textContent = "live";
    state.selected = null;
    const hash = location.hash.replace(/^#/, "") || "/";
    const [path, query] = hash.split("?");
    const params = new URLSearchParams(query || "");
    if (path.startsWith("/e/")) executionPage(decodeURIComponent(path.slice(3)));
    else if (path === "/catalog") catalogPage();
    else listPage(params);
  }

  document.getElementById("sign-out").addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  route();
})();
