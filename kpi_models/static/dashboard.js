/* The KPI dashboard's script (kpi_models/dashboard.py inlines it into the one HTML file).
 *
 * Every number of a preset period was computed in SQL (kpi_models/dashboard_data.py) and is only picked here.
 * For a custom range, and for the charts' weekly and 7-day buckets, this script sums the same daily parts the
 * same way: numerators and denominators added, the ratio computed last (never an average of ratios). Values are
 * written with the rules of kpi_models/formatting.py, embedded in the model (`format`), so "4.56×" and "2.54%"
 * read the same here, in the CLI and in the tests.
 */
"use strict";
(function () {
  const DAY = 86400000;
  const CHANNEL_COLOURS = {organic_search: "#2a9d8f", paid_search: "#e76f51", direct: "#577590", referral: "#8e7dbe",
    social: "#d6549a", email: "#1982c4", paid_other: "#d4a72c", campaign_tagged: "#6a994e", other: "#9aa0a6"};
  const SOURCE_COLOURS = {ga4: "#1d3557", matomo: "#e76f51", search_console: "#2a9d8f", google_ads: "#d4a72c",
    hubspot: "#8e7dbe"};
  const EXTRA = ["#6a4c93", "#ff595e", "#8ac926", "#ffca3a", "#52b788", "#1982c4"];
  const STATUS_LABELS = {on_track: "on track", at_risk: "at risk", off_track: "off track",
    insufficient_data: "insufficient data"};
  const STATUS_ORDER = ["on_track", "at_risk", "off_track", "insufficient_data"];
  const PERIOD_RANK = {month: 0, quarter: 1, year: 2};
  const X_STEPS = [1, 2, 7, 14, 28, 56, 91, 182, 365].map((d) => d * 86400);  // whole days on the time axis
  const LEGEND_DEFAULT = 5;  // lines shown by default when split by channel; the others one click away
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  let M, F, state = null;
  const charts = {};

  // --- model ------------------------------------------------------------------------------------------------------
  async function loadModel() {
    const node = document.getElementById("mkpi-model");
    const bytes = Uint8Array.from(atob(node.textContent.trim()), (c) => c.charCodeAt(0));
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return JSON.parse(await new Response(stream).text());
  }

  // --- formatting (the rules of kpi_models/formatting.py) -------------------------------------------------------
  function fixed(x, decimals) {
    // Python's f"{x:,.Nf}": the exact binary value correctly rounded, ties to even (toFixed(100) spells the exact
    // value: a double's fraction has at most 100 decimals in the range KPIs live in), thousands separated by ",".
    const [whole, frac] = Math.abs(x).toFixed(100).split(".");
    let digits = whole + frac.slice(0, decimals);
    const rest = frac.slice(decimals);
    const tie = rest[0] === "5" && !/[1-9]/.test(rest.slice(1));
    if (rest[0] > "5" || (rest[0] === "5" && !tie) || (tie && Number(digits[digits.length - 1]) % 2 === 1)) {
      const out = digits.split("");
      let i = out.length - 1;
      while (i >= 0 && out[i] === "9") { out[i] = "0"; i--; }
      if (i < 0) out.unshift("1"); else out[i] = String(Number(out[i]) + 1);
      digits = out.join("");
    }
    const head = digits.slice(0, digits.length - decimals) || "0";
    const grouped = head.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    const text = decimals ? `${grouped}.${digits.slice(digits.length - decimals)}` : grouped;
    return x < 0 && /[1-9]/.test(text) ? "-" + text : text;  // never "-0.00"
  }
  const num = fixed;
  function roundHalfEven(x) {
    const r = Math.round(x);
    return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }
  function duration(seconds) {
    const total = roundHalfEven(Math.abs(seconds));
    const minutes = Math.floor(total / 60), secs = total % 60;
    const text = minutes ? `${num(minutes, 0)}m ${String(secs).padStart(2, "0")}s` : `${secs}s`;
    return seconds < 0 && total ? "-" + text : text;
  }
  function decimalsOf(rule, scaled) {
    if ("integers" in rule && Number.isInteger(scaled)) return rule.integers;
    for (const [bound, decimals] of rule.steps) if (bound === null || Math.abs(scaled) < bound) return decimals;
    return 0;
  }
  function suffixOf(rule, currency) {
    const suffix = rule.suffix || "";
    if (suffix.includes("{currency}")) return currency ? suffix.replace("{currency}", currency) : "";
    return suffix;
  }
  function displayUnit(unit, kpi) {
    return F.multiple_kpis.includes(kpi) ? "multiple" : (unit || "count");
  }
  function fmt(value, unit, currency, kpi) {
    if (value === null || value === undefined || !Number.isFinite(value)) return F.missing;
    const rule = F.rules[displayUnit(unit, kpi)] || F.rules.count;
    if (rule.style === "duration") return duration(value);
    const scaled = value * rule.scale;
    return num(scaled, decimalsOf(rule, scaled)) + suffixOf(rule, currency);
  }
  function signed(text) {
    return !text.startsWith("-") && /[1-9]/.test(text) ? "+" + text : text;
  }
  function fmtChange(current, previous, unit, currency, kpi) {
    const ok = (v) => v !== null && v !== undefined && Number.isFinite(v);
    if (!ok(current) || !ok(previous)) return [F.missing, F.missing];
    const shown = displayUnit(unit, kpi), delta = current - previous;
    let absolute;
    if (shown === "seconds") absolute = duration(delta);
    else {
      const rule = F.rules[shown] || F.rules.count, scaled = delta * rule.scale;
      absolute = num(scaled, decimalsOf(rule, scaled)) + (F.delta_suffix[shown] || suffixOf(rule, currency));
    }
    const relative = previous ? signed(num(delta / Math.abs(previous) * 100, F.percent_change_decimals)) + "%"
      : F.missing;
    return [signed(absolute), relative];
  }
  function tone(current, previous, direction) {
    if (current === null || previous === null || current === undefined || previous === undefined ||
        current === previous) return "neutral";
    return (current > previous) === (direction !== "lower") ? "good" : "bad";
  }
  const channelName = (c) => (M.labels.channels[c] || c);
  const sourceName = (s) => (M.labels.sources[s] || s);

  // --- dates ------------------------------------------------------------------------------------------------------
  const base = () => Date.parse(M.range.start + "T00:00:00Z");
  const indexOf = (iso) => Math.round((Date.parse(iso + "T00:00:00Z") - base()) / DAY);
  const isoOf = (i) => new Date(base() + i * DAY).toISOString().slice(0, 10);
  function dateText(iso, year = true) {
    const [y, m, d] = iso.split("-").map(Number);
    return `${d} ${MONTHS[m - 1]}` + (year ? ` ${y}` : "");
  }
  function rangeText(w) {
    if (w.start === w.end) return dateText(w.start);
    const sameYear = w.start.slice(0, 4) === w.end.slice(0, 4);
    return `${dateText(w.start, !sameYear)} – ${dateText(w.end)}`;
  }
  function shiftYear(iso, years) {
    const [y, m, d] = iso.split("-").map(Number);
    const last = new Date(Date.UTC(y + years, m, 0)).getUTCDate();
    return `${y + years}-${String(m).padStart(2, "0")}-${String(Math.min(d, last)).padStart(2, "0")}`;
  }
  const days = (w) => indexOf(w.end) - indexOf(w.start) + 1;

  // --- results: a preset's from the model, a custom range's summed here -------------------------------------------
  function unpack(r) {
    return r ? {n: r[0], d: r[1], v: r[2], final: !!r[3], flags: M.flags[r[4]] || [], days: r[5]} : null;
  }
  function valueOf(kpi, n, d) {
    // a day's level (followers) and distinct count (reach) are their numerator, as sums are
    const k = M.kpis[kpi];
    if (k.additive || k.aggregation === "last" || k.aggregation === "distinct") return n;
    return n !== null && d ? n / d : null;
  }
  // A level (followers) over several days is its last day's (summed over the series: accounts, channels), never a
  // sum of days; a distinct count (reach) has no value over several days (the platform's own is in the presets).
  function lastDayN(series, last) {
    let n = null;
    for (const s of series) {
      const j = last - s.o;
      if (j >= 0 && j < s.q.length && s.q[j] !== null && s.n[j] !== null) n = (n ?? 0) + s.n[j];
    }
    return n;
  }
  function overDays(kpi, n, series, a, b) {
    const aggregation = M.kpis[kpi].aggregation;
    if (aggregation === "last") return lastDayN(series, Math.min(b, indexOf(M.as_of)));
    if (aggregation === "distinct") return a === b ? n : null;
    return n;
  }
  function sumWindow(w) {
    const a = indexOf(w.start), b = indexOf(w.end), out = {}, daysBy = {}, coverage = {};
    const add = (key, kpi, n, d, final, flags, dayset) => {
      const t = out[key] || (out[key] = {kpi, n: null, d: null, final: true, flags: new Set()});
      if (n !== null) t.n = (t.n ?? 0) + n;
      if (d !== null) t.d = (t.d ?? 0) + d;
      t.final = t.final && final;
      flags.forEach((f) => t.flags.add(f));
      const ds = daysBy[key] || (daysBy[key] = new Set());
      dayset.forEach((i) => ds.add(i));
    };
    for (const s of M.series) {
      let n = null, d = null, final = true;
      const flags = new Set(), dayset = [];
      const lo = Math.max(a, s.o), hi = Math.min(b, s.o + s.q.length - 1);
      for (let i = lo; i <= hi; i++) {
        const j = i - s.o, q = s.q[j];
        if (q === null) continue;
        dayset.push(i);
        if (s.n[j] !== null) n = (n ?? 0) + s.n[j];
        if (s.d && s.d[j] !== null) d = (d ?? 0) + s.d[j];
        const combo = M.flags[q];
        if (combo.includes("provisional")) final = false;
        combo.forEach((f) => flags.add(f));
      }
      if (!dayset.length) continue;
      if (M.kpis[s.k] && M.kpis[s.k].aggregation !== "sum") n = overDays(s.k, n, [s], a, b);
      add(`${s.k}|${s.s}|${s.c}`, s.k, n, d, final, flags, dayset);
      add(`${s.k}|${s.s}|*`, s.k, n, d, final, flags, dayset);
      const cov = coverage[s.s] || (coverage[s.s] = new Set());
      dayset.forEach((i) => cov.add(i));
    }
    const results = {};
    for (const [key, t] of Object.entries(out)) {
      results[key] = {n: t.n, d: t.d, v: valueOf(t.kpi, t.n, t.d), final: t.final, flags: [...t.flags].sort(),
        days: daysBy[key].size};
    }
    for (const m of nativeFor(w.end)) results[`${m.kpi}|${m.source}|*`] = m.result;
    return {results, coverage: Object.fromEntries(Object.entries(coverage).map(([k, v]) => [k, v.size]))};
  }
  function nativeFor(endIso) {  // a monthly KPI: the month containing the window's last day, never a sum of months
    const month = endIso.slice(0, 8) + "01";
    return M.monthly.filter((m) => m.month_start === month).map((m) => ({kpi: m.kpi, source: m.source,
      result: {n: m.numerator, d: m.denominator, v: m.value, final: !!m.is_final,
        flags: m.is_final ? [] : ["provisional"], days: null}}));
  }
  function customState(start, end) {
    const cur = {start, end}, n = days(cur);
    const prev = {start: isoOf(indexOf(start) - n), end: isoOf(indexOf(start) - 1)};
    const ly = {start: shiftYear(start, -1), end: shiftYear(end, -1)};
    const sums = [cur, prev, ly].map(sumWindow);
    const results = {}, coverage = {};
    sums.forEach((s, i) => {
      for (const [key, r] of Object.entries(s.results)) (results[key] || (results[key] = [null, null, null]))[i] = r;
      for (const [src, c] of Object.entries(s.coverage)) (coverage[src] || (coverage[src] = [0, 0, 0]))[i] = c;
    });
    return {key: "custom", label: "Custom", running: end === M.as_of, cur, prev, ly, results, coverage,
      objectives: [], drill: null};
  }
  function presetState(key) {
    const p = M.periods.find((x) => x.key === key);
    const results = {};
    for (const [k, r] of Object.entries(M.results[key] || {})) results[k] = r.map(unpack);
    return {key, label: p.label, running: p.running, cur: p.cur, prev: p.prev, ly: p.ly, results,
      coverage: M.coverage[key] || {}, objectives: M.objectives[key] || [], drill: M.drill[key] || {}};
  }

  // --- helpers ----------------------------------------------------------------------------------------------------
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = v; else if (k === "html") node.innerHTML = v; else node.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }
  function reasons(flags) {
    return flags.map((f) => M.flag_text[f] || f).join("; ");
  }
  function coverageNote(source, which) {
    const windows = [state.cur, state.prev, state.ly];
    const cov = state.coverage[source];
    if (!cov) return null;
    const missing = [0, which].filter((i) => cov[i] < days(windows[i]));
    if (!missing.length) return null;
    return missing.map((i) => `${sourceName(source)} has data on ${cov[i]} of ${days(windows[i])} days of ` +
      `${i === 0 ? "this period" : "the comparison window"} (${rangeText(windows[i])})`).join("; ");
  }
  function currencyOf(kpi, source) {
    return M.currencies[`${kpi}|${source}`] || null;
  }

  // --- cards ------------------------------------------------------------------------------------------------------
  function objectiveFor(kpi, source) {
    const rows = state.objectives.filter((o) => o.kpi === kpi && o.source === source && o.channel === "all" &&
      o.account_id === "all");
    rows.sort((a, b) => PERIOD_RANK[a.period] - PERIOD_RANK[b.period]);
    return rows[0] || null;
  }
  function changeLine(what, kpi, source, cur, other, which) {
    const k = M.kpis[kpi], currency = currencyOf(kpi, source);
    if (!other || other.v === null) {
      return el("div", {class: "change tone-neutral", title: "no data for the comparison window"},
        el("span", {class: "what", text: what + " "}), el("b", {text: F.missing}));
    }
    const [absolute, relative] = fmtChange(cur ? cur.v : null, other.v, k.unit, currency, kpi);
    let t = k.budget ? "neutral" : tone(cur ? cur.v : null, other.v, k.direction);
    let title = `${fmt(other.v, k.unit, currency, kpi)} then`;
    const note = k.native ? null : coverageNote(source, which);
    if (note) { t = "incomplete"; title += ` — not like for like: ${note}`; }
    if (k.budget) title += " — a budget: judged against its objective, not by direction";
    return el("div", {class: `change tone-${t}`, title},
      el("span", {class: "what", text: what + " "}), el("b", {text: relative === F.missing ? absolute : relative}),
      relative === F.missing ? null : el("span", {class: "abs", text: ` (${absolute})`}));
  }
  function cardNode(card) {
    const k = M.kpis[card.kpi], currency = currencyOf(card.kpi, card.source);
    const r = state.results[`${card.kpi}|${card.source}|*`] || [null, null, null];
    const [cur, prev, ly] = r;
    const objective = objectiveFor(card.kpi, card.source);
    const cls = objective ? `card status-${objective.status}` : "card no-objective";
    const title = `${k.label}: ${k.formula}\nsource: ${sourceName(card.source)} — ${k.tables}\n` +
      `${k.direction} is better` + (k.native ? "\na monthly KPI: the month containing the period's last day" : "");
    const node = el("button", {type: "button", class: cls, role: "listitem", "data-kpi": card.kpi,
      "data-source": card.source, "data-card": card.id, title, "aria-expanded": "false"});
    node.append(el("div", {class: "card-head"}, el("span", {class: "kpi-name", text: k.label}),
      el("span", {class: "source", text: sourceName(card.source)})));
    const value = el("div", {class: "value"}, el("span", {class: "v", text: fmt(cur ? cur.v : null, k.unit, currency,
      card.kpi)}));
    if (cur && !cur.final) {
      value.append(el("span", {class: "provisional-mark", title: reasons(cur.flags.length ? cur.flags :
        ["provisional"]), text: "provisional"}));
    }
    node.append(value);
    node.append(el("div", {class: "changes"}, changeLine("vs previous", card.kpi, card.source, cur, prev, 1),
      changeLine("vs last year", card.kpi, card.source, cur, ly, 2)));
    if (k.native && cur) {
      const month = state.cur.end.slice(0, 7) + "-01";
      node.append(el("div", {class: "card-note", text: `monthly KPI · ${MONTHS[+month.slice(5, 7) - 1]} ` +
        `${month.slice(0, 4)}${cur.final ? "" : " (to date)"}`}));
    }
    if (objective) {
      const goal = `objective ${fmt(objective.target, k.unit, objective.currency, card.kpi)} / ${objective.period}` +
        (k.additive && objective.target_to_date !== null ? ` · to date ${fmt(objective.target_to_date, k.unit,
          objective.currency, card.kpi)}` : "");
      const attained = objective.attainment;
      const width = attained === null ? 0 : Math.max(0, Math.min(attained, 1.5)) / 1.5 * 100;
      node.append(el("div", {class: "objective"}, el("span", {class: `badge status-${objective.status}`,
        text: STATUS_LABELS[objective.status] || objective.status}), ` ${goal}` +
        (attained === null ? "" : ` · ${fmt(attained, "attainment")}`)));
      const bar = el("div", {class: "bar"}, el("span", {class: `status-${objective.status}`,
        style: `width:${width.toFixed(0)}%;background:var(--${objective.status})`}));
      node.append(bar);
      if (objective.gap_text) node.append(el("div", {class: "card-note", text: objective.gap_text}));
      if (objective.provisional) node.append(el("div", {class: "card-note", text: "status rests on provisional days"}));
    }
    node.addEventListener("click", () => toggleBreakdown(node, card));
    return node;
  }
  function renderCards() {
    for (const section of document.querySelectorAll("section.family")) {
      const grid = section.querySelector(".cards");
      if (!grid) continue;
      const family = section.dataset.family;
      grid.replaceChildren(...M.cards.filter((c) => c.family === family).map(cardNode));
      const open = section.querySelector(".breakdown");
      if (open && !open.hidden && open.dataset.card) {
        const card = M.cards.find((c) => c.id === open.dataset.card);
        const node = grid.querySelector(`[data-card="${CSS.escape(card.id)}"]`);
        fillBreakdown(open, card);
        if (node) node.setAttribute("aria-expanded", "true");
      }
    }
  }

  // --- a card's breakdown by source and channel -------------------------------------------------------------------
  function toggleBreakdown(node, card) {
    const section = node.closest("section.family"), panel = section.querySelector(".breakdown");
    const wasOpen = !panel.hidden && panel.dataset.card === card.id;
    section.querySelectorAll(".card").forEach((c) => c.setAttribute("aria-expanded", "false"));
    if (wasOpen) { panel.hidden = true; panel.dataset.card = ""; return; }
    node.setAttribute("aria-expanded", "true");
    panel.dataset.card = card.id;
    fillBreakdown(panel, card);
    panel.hidden = false;
  }
  function fillBreakdown(panel, card) {
    const k = M.kpis[card.kpi];
    const head = el("div", {class: "bd-head"}, el("b", {text: `${k.label}: by source and channel`}),
      el("span", {class: "muted small", text: ` ${rangeText(state.cur)}`}));
    const close = el("button", {type: "button", class: "close", text: "Close"});
    close.addEventListener("click", () => {
      panel.hidden = true; panel.dataset.card = "";
      panel.closest("section").querySelectorAll(".card").forEach((c) => c.setAttribute("aria-expanded", "false"));
    });
    head.append(close);
    const tbody = el("tbody");
    for (const source of k.sources) {
      const currency = currencyOf(card.kpi, source);
      const rows = Object.entries(state.results).filter(([key]) => key.startsWith(`${card.kpi}|${source}|`));
      if (!rows.length) continue;
      const weight = (r) => (r[0] ? (k.additive ? r[0].n : r[0].d) || 0 : 0);
      rows.sort((a, b) => (a[0].endsWith("|*") ? -1 : b[0].endsWith("|*") ? 1 : weight(b[1]) - weight(a[1])));
      for (const [key, r] of rows) {
        const channel = key.split("|")[2];
        const [cur, prev, ly] = r;
        const cells = [sourceName(source), channel === "*" ? "All channels" : channelName(channel)];
        const v = (x) => (x ? x.v : null);
        const tr = el("tr", {class: [channel === "*" ? "total" : "", cur && !cur.final ? "provisional" : ""]
          .join(" ").trim() || null, "data-channel": channel, "data-source": source});
        cells.forEach((c) => tr.append(el("td", {text: c})));
        tr.append(el("td", {class: "num", text: fmt(v(cur), k.unit, currency, card.kpi),
          title: cur && !cur.final ? reasons(cur.flags) : null}));
        for (const other of [prev, ly]) {
          const [, rel] = fmtChange(v(cur), v(other), k.unit, currency, card.kpi);
          tr.append(el("td", {class: "num", text: fmt(v(other), k.unit, currency, card.kpi)}));
          tr.append(el("td", {class: `num tone-${k.budget ? "neutral" : tone(v(cur), v(other), k.direction)}`},
            el("b", {text: rel})));
        }
        tbody.append(tr);
      }
    }
    const table = el("table", {class: "breakdown-table"}, el("thead", {}, el("tr", {},
      ...["source", "channel", "value", "previous", "change", "last year", "change"].map((h, i) =>
        el("th", {class: i > 1 ? "num" : null, text: h})))), tbody);
    const objectives = state.objectives.filter((o) => o.kpi === card.kpi);
    const extra = objectives.length ? el("p", {class: "muted small", text: "Objectives: " + objectives.map((o) =>
      `${sourceName(o.source)} · ${o.channel === "all" ? "all channels" : channelName(o.channel)}` +
      `${o.account_id !== "all" ? " · account " + o.account_id : ""} (${o.period}): ` +
      `${STATUS_LABELS[o.status] || o.status}`).join("; ")}) : null;
    panel.replaceChildren(head, el("div", {class: "table-wrap"}, table), extra);
  }

  // --- objectives overview ------------------------------------------------------------------------------------------
  function renderObjectives() {
    const rows = state.objectives;
    const counts = Object.fromEntries(STATUS_ORDER.map((s) => [s, rows.filter((o) => o.status === s).length]));
    document.getElementById("status-summary").replaceChildren(...STATUS_ORDER.map((s) =>
      el("span", {class: `chip status-${s}`}, el("b", {text: String(counts[s])}), ` ${STATUS_LABELS[s]}`)));
    document.getElementById("objectives-period").textContent = rows.length ? `(${state.label})` : "";
    const tbody = document.querySelector("#objectives-table tbody");
    tbody.replaceChildren(...rows.map((o) => {
      const k = M.kpis[o.kpi] || {label: o.kpi, unit: "count"};
      const scope = `${o.channel === "all" ? "all channels" : channelName(o.channel)}` +
        `${o.account_id !== "all" ? " · account " + o.account_id : ""}`;
      const period = o.period === "month" ? `${MONTHS[+o.period_start.slice(5, 7) - 1]} ${o.period_start.slice(0, 4)}`
        : `${o.period} from ${dateText(o.period_start)}`;
      return el("tr", {class: o.provisional ? "provisional" : null},
        el("td", {text: k.label, "data-v": k.label}), el("td", {text: sourceName(o.source)}), el("td", {text: scope}),
        el("td", {text: period, "data-v": o.period_start}),
        el("td", {class: "num", text: fmt(o.actual, k.unit, o.currency, o.kpi), "data-v": o.actual}),
        el("td", {class: "num", text: fmt(o.target, k.unit, o.currency, o.kpi), "data-v": o.target}),
        el("td", {class: "num", text: fmt(o.attainment, "attainment"), "data-v": o.attainment}),
        el("td", {"data-v": STATUS_ORDER.indexOf(o.status)}, el("span", {class: `badge status-${o.status}`,
          text: STATUS_LABELS[o.status] || o.status})),
        el("td", {text: (o.gap_text || "") + (o.provisional ? " (provisional)" : "")}));
    }));
    const note = document.getElementById("objectives-note");
    note.textContent = ["this_month", "last_month", "this_quarter"].includes(state.key) ? (rows.length ? "" :
      "No objective for this period.") : "Objectives are judged per month, quarter and year: pick This month, " +
      "Last month or This quarter to see them.";
  }

  // --- drill-down tables ------------------------------------------------------------------------------------------
  const DRILL_CELLS = {
    campaigns: (r) => [["text", r.campaign, "item"], ["text", r.account_id], ["money", r.cost], ["count", r.clicks],
      ["count", r.impressions], ["ratio", r.ctr], ["money", r.cpc], ["count", r.conversions], ["money", r.cpa],
      ["money", r.conversions_value], ["multiple", r.roas]],
    queries: (r) => [["text", r.item, "item"], ["text", r.site], ["count", r.clicks], ["count", r.impressions],
      ["ratio", r.ctr], ["position", r.position]],
    emails: (r) => [["text", r.email, "item"], ["text", r.first_day], ["count", r.sent], ["count", r.delivered],
      ["ratio", r.open_rate], ["ratio", r.click_rate], ["ratio", r.click_to_open_rate], ["ratio", r.bounce_rate],
      ["ratio", r.unsubscribe_rate]],
  };
  DRILL_CELLS.pages = DRILL_CELLS.queries;
  function drillRow(kind, r) {
    const tr = el("tr", {class: r.is_final === false ? "provisional" : null,
      title: r.is_final === false ? "provisional: some of its days will still move" : null});
    for (const [unit, v, cls] of DRILL_CELLS[kind](r)) {
      if (unit === "text") tr.append(el("td", {class: cls || null, text: v ?? F.missing, "data-v": v ?? ""}));
      else {
        const text = unit === "money" ? fmt(v, "currency", r.currency) : fmt(v, unit, null, unit === "multiple" ?
          "ad_roas" : null);
        tr.append(el("td", {class: "num", text, "data-v": v ?? ""}));
      }
    }
    return tr;
  }
  function channelRows() {  // the web channels table, from the period's per-channel results
    const out = [];
    for (const source of M.kpis.sessions ? M.kpis.sessions.sources : []) {
      const total = state.results[`sessions|${source}|*`];
      if (!total || !total[0]) continue;
      const channels = Object.keys(state.results).filter((k) => k.startsWith(`sessions|${source}|`) &&
        !k.endsWith("|*")).map((k) => k.split("|")[2]);
      for (const channel of channels) {
        const get = (kpi) => { const r = state.results[`${kpi}|${source}|${channel}`]; return r && r[0] ? r[0].v : null; };
        const sessions = get("sessions");
        out.push({source, channel, sessions, share: sessions !== null && total[0].n ? sessions / total[0].n : null,
          engagement_rate: get("engagement_rate"), bounce_rate: get("bounce_rate"),
          conversion_rate: get("conversion_rate"), avg_session_duration: get("avg_session_duration")});
      }
    }
    out.sort((a, b) => a.source.localeCompare(b.source) || (b.sessions || 0) - (a.sessions || 0));
    return out;
  }
  function renderDrills() {
    for (const block of document.querySelectorAll(".drill")) {
      const kind = block.dataset.drill, tbody = block.querySelector("tbody");
      const empty = block.querySelector(".drill-empty");
      let rows;
      if (kind === "channels") {
        rows = channelRows().map((r) => el("tr", {"data-channel": r.channel},
          el("td", {text: sourceName(r.source)}), el("td", {text: channelName(r.channel)}),
          el("td", {class: "num", text: fmt(r.sessions, "count"), "data-v": r.sessions ?? ""}),
          el("td", {class: "num", text: fmt(r.share, "ratio"), "data-v": r.share ?? ""}),
          ...["engagement_rate", "bounce_rate", "conversion_rate"].map((k) =>
            el("td", {class: "num", text: fmt(r[k], "ratio"), "data-v": r[k] ?? ""})),
          el("td", {class: "num", text: fmt(r.avg_session_duration, "seconds"), "data-v": r.avg_session_duration ?? ""})));
      } else if (!state.drill) {
        rows = [];
        empty.textContent = "Drill-downs are computed for the preset periods: pick one above.";
      } else {
        rows = (state.drill[kind] || []).map((r) => drillRow(kind, r));
        empty.textContent = state.drill[kind] ? "No rows in this period." : "No data yet.";
      }
      tbody.replaceChildren(...rows);
      empty.hidden = rows.length > 0;
      const sorted = block.querySelector("th[aria-sort]");
      if (sorted) sortTable(sorted.closest("table"), sorted, sorted.getAttribute("aria-sort"));
    }
  }
  function sortTable(table, th, direction) {
    const index = [...th.parentNode.children].indexOf(th);
    table.querySelectorAll("th").forEach((h) => h.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", direction);
    const tbody = table.querySelector("tbody");
    const key = (tr) => {
      const raw = tr.children[index].dataset.v ?? tr.children[index].textContent;
      return raw === "" ? null : (isNaN(Number(raw)) ? raw : Number(raw));
    };
    const rows = [...tbody.children].sort((a, b) => {
      const x = key(a), y = key(b);
      if (x === null) return 1; if (y === null) return -1;
      const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return direction === "ascending" ? c : -c;
    });
    tbody.replaceChildren(...rows);
  }
  function wireSorting() {
    for (const table of document.querySelectorAll("table.sortable")) {
      table.querySelectorAll("th").forEach((th) => th.addEventListener("click", () => {
        const next = th.getAttribute("aria-sort") === "descending" ? "ascending" : "descending";
        sortTable(table, th, next);
      }));
    }
  }

  // --- charts -----------------------------------------------------------------------------------------------------
  function familyKpis(family) {
    return Object.entries(M.kpis).filter(([kpi, k]) => k.family === family &&
      (k.native ? M.monthly.some((m) => m.kpi === kpi) : M.series.some((s) => s.k === kpi))).map(([kpi]) => kpi);
  }
  function buckets(grain, kpi) {
    const a = indexOf(state.cur.start), b = indexOf(state.cur.end), asOf = indexOf(M.as_of), out = [];
    if (grain === "month") {
      const end = state.cur.end.slice(0, 8) + "01";
      const months = [...new Set(M.monthly.filter((m) => m.kpi === kpi && m.month_start <= end)
        .map((m) => m.month_start))].sort().slice(-12);
      return months.map((m) => ({x: Date.parse(m + "T00:00:00Z") / 1000, month: m,
        label: `${MONTHS[+m.slice(5, 7) - 1]} ${m.slice(0, 4)}`}));
    }
    if (grain === "day") {
      for (let i = a; i <= b; i++) out.push({a: i, b: i, x: (base() + i * DAY) / 1000, label: dateText(isoOf(i))});
    } else if (grain === "rolling") {
      for (let i = a; i <= b; i++) {
        const lo = Math.max(0, i - 6);
        out.push({a: lo, b: i, x: (base() + i * DAY) / 1000, label: `7 days to ${dateText(isoOf(i))}`,
          partial: i - lo + 1 < 7 ? `only ${i - lo + 1} of 7 days in this page's data` : null});
      }
    } else {
      const first = a - ((new Date(base() + a * DAY).getUTCDay() + 6) % 7);  // the Monday of the first week
      for (let m = first; m <= b; m += 7) {
        const lo = Math.max(m, a), hi = Math.min(m + 6, b), n = hi - lo + 1;
        let partial = null;
        if (m + 6 > asOf) partial = `week still running: ${n} of 7 days`;
        else if (n < 7) partial = `partial week: ${n} of 7 days inside the period`;
        out.push({a: lo, b: hi, x: (base() + lo * DAY) / 1000, label: `week of ${dateText(isoOf(m))}`, partial});
      }
    }
    return out;
  }
  function lineValues(kpi, parts, bs) {  // per bucket: ratio of summed parts, and why it is not final
    return bs.map((bk) => {
      if (bk.month) {
        const m = M.monthly.find((x) => x.kpi === kpi && x.source === parts.source && x.month_start === bk.month);
        if (!m) return {v: null};
        const why = m.is_final ? [] : ["month still running: the value will still move"];
        return {v: m.value, why};
      }
      let n = null, d = null, seen = 0;
      const flags = new Set();
      for (const s of parts.series) {
        const lo = Math.max(bk.a, s.o), hi = Math.min(bk.b, s.o + s.q.length - 1);
        for (let i = lo; i <= hi; i++) {
          const j = i - s.o;
          if (s.q[j] === null) continue;
          seen++;
          if (s.n[j] !== null) n = (n ?? 0) + s.n[j];
          if (s.d && s.d[j] !== null) d = (d ?? 0) + s.d[j];
          M.flags[s.q[j]].forEach((f) => flags.add(f));
        }
      }
      if (!seen) return {v: null};
      n = overDays(kpi, n, parts.series, bk.a, bk.b);
      const why = [...flags].map((f) => M.flag_text[f] || f);
      if (bk.partial) why.unshift(bk.partial);
      return {v: valueOf(kpi, n, d), why, weight: M.kpis[kpi].additive ? n : d};
    });
  }
  function chartLines(section, kpi) {
    const k = M.kpis[kpi], split = section.querySelector(".chart-split").value;
    if (k.native) {
      return [...new Set(M.monthly.filter((m) => m.kpi === kpi).map((m) => m.source))].map((source) =>
        ({name: sourceName(source), colour: SOURCE_COLOURS[source] || EXTRA[0], source, series: []}));
    }
    const series = M.series.filter((s) => s.k === kpi);
    const sources = [...new Set(series.map((s) => s.s))];
    const sourceSelect = section.querySelector(".chart-source");
    const label = section.querySelector(".chart-source-label");
    label.hidden = !(split === "channel" && sources.length > 1);
    if (split !== "channel") {
      return sources.map((source) => ({name: `${sourceName(source)} · all channels`, source,
        colour: SOURCE_COLOURS[source] || EXTRA[0], series: series.filter((s) => s.s === source)}));
    }
    if (![...sourceSelect.options].some((o) => o.value === sourceSelect.value) ||
        sourceSelect.dataset.kpi !== kpi) {
      sourceSelect.replaceChildren(...sources.map((s) => el("option", {value: s, text: sourceName(s)})));
      sourceSelect.dataset.kpi = kpi;
    }
    const source = sourceSelect.value || sources[0];
    let extra = 0;
    return series.filter((s) => s.s === source).map((s) => ({name: channelName(s.c), source, channel: s.c,
      colour: CHANNEL_COLOURS[s.c] || EXTRA[extra++ % EXTRA.length], series: [s]}));
  }
  function anomalies(kpi, bs, line) {
    if (!M.anomalies.length) return bs.map(() => null);
    return bs.map((bk) => {
      const hits = M.anomalies.filter((al) => al.kpi === kpi && al.source === line.source &&
        (!line.channel || !al.channel || al.channel === line.channel) &&
        (bk.month ? al.date.slice(0, 7) === bk.month.slice(0, 7) : indexOf(al.date) >= bk.a && indexOf(al.date) <= bk.b));
      return hits.length ? hits.map((h) => h.message).join("; ") : null;
    });
  }
  function renderChart(section) {
    const family = section.dataset.family, host = section.querySelector(".chart");
    if (!host) return;
    const kpi = section.querySelector(".chart-kpi").value, k = M.kpis[kpi];
    const grainSelect = section.querySelector(".chart-grain"), splitSelect = section.querySelector(".chart-split");
    const grains = k.native ? [["month", "Monthly"]] : [["day", "Daily"], ["rolling", "7-day (smoothed)"],
      ["week", "Weekly"]];
    if (grainSelect.dataset.native !== String(k.native)) {
      const keep = grainSelect.value;
      grainSelect.replaceChildren(...grains.map(([v, t]) => el("option", {value: v, text: t})));
      grainSelect.value = grains.some(([v]) => v === keep) ? keep : grains[0][0];
      grainSelect.dataset.native = String(k.native);
    }
    splitSelect.disabled = k.native;
    const grain = grainSelect.value;
    const bs = buckets(grain, kpi);
    const lines = chartLines(section, kpi);
    const currency = lines.length ? currencyOf(kpi, lines[0].source) : null;
    const values = lines.map((line) => lineValues(kpi, line, bs));
    const marks = lines.map((line) => anomalies(kpi, bs, line));
    // Lines by volume, the largest first: by channel, only the top ones are on by default.
    const order = lines.map((_, i) => i).sort((x, y) =>
      values[y].reduce((t, p) => t + (p.weight || 0), 0) - values[x].reduce((t, p) => t + (p.weight || 0), 0));
    const xs = bs.map((b) => b.x);
    const data = [xs], series = [{}], owners = [];
    for (const i of order) {
      const vals = values[i];
      const uncertain = vals.map((p) => !!(p.why && p.why.length));
      const solid = vals.map((p, j) => (uncertain[j] ? null : p.v));
      const dashed = vals.map((p, j) => (uncertain[j] || (j + 1 < vals.length && uncertain[j + 1]) ? p.v : null));
      const anomaly = vals.map((p, j) => (marks[i][j] ? p.v : null));
      data.push(solid, dashed, anomaly);
      series.push({label: lines[i].name, stroke: lines[i].colour, width: 2, spanGaps: false,
        points: {show: bs.length < 40, size: 4}},
      {label: lines[i].name + " (provisional or partial)", stroke: lines[i].colour, width: 2, dash: [5, 4],
        spanGaps: false, points: {show: true, size: 7, fill: "#fff", stroke: lines[i].colour, width: 2}},
      {label: lines[i].name + " (alert)", stroke: "#c62828", paths: () => null,
        points: {show: true, size: 11, fill: "#c62828", stroke: "#c62828"}});
      owners.push(i);
    }
    const visible = owners.map((_, rank) => lines.length <= LEGEND_DEFAULT || rank < LEGEND_DEFAULT);
    owners.forEach((_, rank) => { if (!visible[rank]) [1, 2, 3].forEach((o) => { series[rank * 3 + o].show = false; }); });
    const tooltip = el("div", {class: "tooltip"});
    const axisValue = (v) => fmt(v, k.unit, currency, kpi);
    const width = Math.max(280, host.clientWidth || section.clientWidth - 40);
    const opts = {
      width, height: width < 500 ? 220 : 280, legend: {show: false},
      scales: {x: {time: true}, y: {range: () => yRange(values)}},
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      axes: [{stroke: "#57606a", grid: {stroke: "#eaeef2"}, space: 56, incrs: X_STEPS,
        splits: grain === "month" ? () => xs : undefined,
        values: (u, splits) => splits.map((ts) => axisDate(ts, grain))},
        {stroke: "#57606a", grid: {stroke: "#eaeef2"}, values: (u, splits) => splits.map(axisValue),
          size: (u, labels) => (labels ? Math.max(...labels.map((t) => t.length)) * 7 + 18 : 50)}],
      cursor: {points: {show: false}, drag: {x: false, y: false}},
      series,
      hooks: {setCursor: [(u) => showTooltip(u, tooltip, bs, lines, values, marks, owners, k, kpi, currency)]},
    };
    if (charts[family]) charts[family].destroy();
    host.replaceChildren();
    charts[family] = new uPlot(opts, data, host);
    host.append(tooltip);
    renderLegend(section, charts[family], lines, owners, visible);
    const note = section.querySelector(".chart-note");
    note.textContent = (k.native ? "Monthly KPI: one point per month (never summed over months); the running " +
      "month is dotted. " : `${rangeText(state.cur)}, ${grainSelect.selectedOptions[0].text.toLowerCase()}; ` +
      "each point is a ratio of sums over its days. ") + "Dotted with hollow points: provisional days, or a " +
      "partial week (hover for why)" + (M.anomalies.length ? "; red: an unusual day or an open alert." : ".");
  }
  function yRange(values) {  // from zero (or the lowest value, when below) to a little above the highest
    const all = values.flat().map((p) => p.v).filter((v) => v !== null && v !== undefined && Number.isFinite(v));
    if (!all.length) return [0, 1];
    const lo = Math.min(0, ...all), hi = Math.max(...all);
    return [lo, hi > lo ? hi + (hi - lo) * 0.08 : lo + 1];
  }
  function axisDate(ts, grain) {
    const iso = new Date(ts * 1000).toISOString().slice(0, 10);
    return grain === "month" ? `${MONTHS[+iso.slice(5, 7) - 1]} ${iso.slice(2, 4)}` : dateText(iso, false);
  }
  function showTooltip(u, tip, bs, lines, values, marks, owners, k, kpi, currency) {
    const idx = u.cursor.idx;
    if (idx === null || idx === undefined || u.cursor.left < 0) { tip.style.display = "none"; return; }
    const rows = [el("div", {}, el("b", {text: bs[idx].label}))];
    owners.forEach((i, rank) => {
      if (!u.series[rank * 3 + 1].show) return;
      const p = values[i][idx];
      rows.push(el("div", {}, el("span", {style: `color:${lines[i].colour}`, text: "● "}),
        `${lines[i].name}: `, el("b", {text: fmt(p.v, k.unit, currency, kpi)})));
      if (p.why && p.why.length) rows.push(el("div", {class: "why", text: p.why.join("; ")}));
      if (marks[i][idx]) rows.push(el("div", {class: "alert", text: "alert: " + marks[i][idx]}));
    });
    tip.replaceChildren(...rows);
    tip.style.display = "block";
    const left = u.cursor.left + u.over.offsetLeft, room = u.over.offsetLeft + u.over.clientWidth;
    tip.style.left = `${Math.min(left + 12, Math.max(0, room - tip.offsetWidth))}px`;
    tip.style.top = `${u.cursor.top + 10}px`;
  }
  function renderLegend(section, chart, lines, owners, visible) {
    const legend = section.querySelector(".chart-legend");
    const items = owners.map((i, rank) => {
      const b = el("button", {type: "button", "aria-pressed": String(visible[rank]), "data-line": lines[i].name},
        el("i", {style: `background:${lines[i].colour}`}), lines[i].name);
      b.hidden = !visible[rank];
      b.addEventListener("click", () => {
        const on = b.getAttribute("aria-pressed") !== "true";
        b.setAttribute("aria-pressed", String(on));
        [1, 2, 3].forEach((o) => chart.setSeries(rank * 3 + o, {show: on}));
      });
      return b;
    });
    const hidden = items.filter((b) => b.hidden).length;
    const children = [...items];
    if (hidden) {
      const more = el("button", {type: "button", class: "more", text: `+ ${hidden} more`});
      more.addEventListener("click", () => { items.forEach((b) => { b.hidden = false; }); more.remove(); });
      children.push(more);
    }
    legend.replaceChildren(...children);
  }
  function setupCharts() {
    for (const section of document.querySelectorAll("section.family")) {
      const select = section.querySelector(".chart-kpi");
      if (!select) continue;
      const family = section.dataset.family;
      const kpis = familyKpis(family);
      if (!kpis.length) { section.querySelector(".chart-block").hidden = true; continue; }
      const headline = M.families.find((f) => f.key === family).headline;
      kpis.sort((a, b) => (b === headline) - (a === headline));
      select.replaceChildren(...kpis.map((kpi) => el("option", {value: kpi, text: M.kpis[kpi].label})));
      section.querySelector(".chart-split").replaceChildren(el("option", {value: "source", text: "Total per source"}),
        el("option", {value: "channel", text: "By channel"}));
      for (const s of section.querySelectorAll(".chart-controls select")) {
        s.addEventListener("change", () => renderChart(section));
      }
    }
    let width = window.innerWidth;
    window.addEventListener("resize", () => {
      if (Math.abs(window.innerWidth - width) < 40) return;
      width = window.innerWidth;
      document.querySelectorAll("section.family").forEach(renderChart);
    });
  }

  // --- periods ----------------------------------------------------------------------------------------------------
  function renderPeriodText() {
    const t = `${state.label}: ${rangeText(state.cur)} (${days(state.cur)} days${state.running ? ", running" : ""})` +
      ` · compared with ${rangeText(state.prev)} (previous period) and ${rangeText(state.ly)} (same period last year)`;
    document.getElementById("period-text").textContent = t;
  }
  function select(key, start, end) {
    state = key === "custom" ? customState(start, end) : presetState(key);
    document.querySelectorAll(".periods button.period").forEach((b) =>
      b.setAttribute("aria-pressed", String(b.dataset.period === key)));
    renderPeriodText();
    renderObjectives();
    renderCards();
    renderDrills();
    document.querySelectorAll("section.family").forEach(renderChart);
    document.body.dataset.period = key;
  }
  function wirePeriods() {
    document.querySelectorAll(".periods button.period").forEach((b) => b.addEventListener("click", () => {
      if (b.dataset.period === "custom") {
        const s = document.getElementById("custom-start"), e = document.getElementById("custom-end");
        if (!s.value) s.value = state.cur.start;
        if (!e.value) e.value = state.cur.end;
        s.focus();
        return;
      }
      select(b.dataset.period);
    }));
    document.getElementById("custom-apply").addEventListener("click", () => {
      const s = document.getElementById("custom-start"), e = document.getElementById("custom-end");
      let start = s.value, end = e.value;
      if (!start || !end) return;
      if (start > end) [start, end] = [end, start];
      start = start < M.range.start ? M.range.start : start;
      end = end > M.range.end ? M.range.end : end;
      s.value = start; e.value = end;
      select("custom", start, end);
    });
  }
  function renderAlerts() {
    const section = document.getElementById("alerts");
    if (!M.alerts || !M.alerts.length) return;
    document.getElementById("alert-list").replaceChildren(...M.alerts.map((a) => el("li", {},
      el("b", {text: `${(M.kpis[a.kpi] || {label: a.kpi}).label} · ${sourceName(a.source)}`}),
      `${a.severity ? " (" + a.severity + ")" : ""}${a.date ? " " + dateText(a.date) : ""}: ${a.message}`)));
    section.hidden = false;
  }

  async function main() {
    M = await loadModel();
    F = M.format;
    window.mkpi = {model: M, format: fmt, change: fmtChange, tone, select, sumWindow, state: () => state};
    renderAlerts();
    wireSorting();
    wirePeriods();
    setupCharts();
    select(M.default_period);
    document.body.dataset.ready = "1";
  }
  main().catch((err) => { console.error("dashboard:", err); document.body.dataset.ready = "error"; });
})();
