/* flowgauge web view: draws one VIEW (see CONTRACT.md) with uPlot.
   Plain ES2020, one IIFE, no modules, no build step. */
(function () {
  "use strict";

  var RANGES = { day: 86400, week: 7 * 86400, month: 30 * 86400, all: Infinity };
  var AGE_BANDS = [
    ["age_lt_1h", "< 1 h"], ["age_1h_4h", "1–4 h"], ["age_4h_12h", "4–12 h"], ["age_12h_24h", "12–24 h"],
    ["age_1d_3d", "1–3 d"], ["age_3d_7d", "3–7 d"], ["age_7d_30d", "7–30 d"], ["age_ge_30d", "≥ 30 d"],
  ];
  var TARGET_LABELS = { first_response: "First response", resolution: "Resolution" };
  var SLA_STATE_LABELS = { at_risk: "at risk", breached: "breached", met: "met" };

  var THEMES = {
    light: {
      text: "#1d2733", axis: "#5b6675", grid: "rgba(29,39,51,0.08)", tick: "rgba(29,39,51,0.15)",
      inflow: "#c8553d", outflow: "#2b6cb0", inflow7: "rgba(200,85,61,0.75)", outflow7: "rgba(43,108,176,0.75)",
      firing: "rgba(200,85,61,0.10)", firingEdge: "rgba(200,85,61,0.35)",
      open: "#1d2733", band: "rgba(47,158,91,0.16)", bandEdge: "rgba(47,158,91,0.45)", doc: "#7b5cc4",
      arrivals: "#c8553d", departures: "#2b6cb0", backlog: "rgba(200,85,61,0.12)",
      ages: ["#d6ecf3", "#a9d6e5", "#7fbfd8", "#5aa3c6", "#f3c98b", "#eba264", "#d9743f", "#b0462a"],
      reopen: "#c8553d", recontact: "#d99a1e", deflection: "#2f9e5b", frt: "#2b6cb0",
    },
    dark: {
      text: "#e6edf3", axis: "#a7b1bc", grid: "rgba(230,237,243,0.08)", tick: "rgba(230,237,243,0.18)",
      inflow: "#f27d62", outflow: "#5fa8e8", inflow7: "rgba(242,125,98,0.75)", outflow7: "rgba(95,168,232,0.75)",
      firing: "rgba(242,125,98,0.14)", firingEdge: "rgba(242,125,98,0.45)",
      open: "#e6edf3", band: "rgba(63,185,110,0.20)", bandEdge: "rgba(63,185,110,0.55)", doc: "#b59cf0",
      arrivals: "#f27d62", departures: "#5fa8e8", backlog: "rgba(242,125,98,0.16)",
      ages: ["#1f4e5f", "#2b6a80", "#3a86a0", "#55a3bf", "#c9a063", "#d98a4c", "#e0683a", "#f2553a"],
      reopen: "#f27d62", recontact: "#e5b341", deflection: "#4cc47a", frt: "#5fa8e8",
    },
  };

  // ---------------------------------------------------------------- state
  var S = {
    config: null, mode: "static", views: null, view: null,
    scope: "all", range: "week", tzParam: null, wall: false, tz: "UTC",
    unreachable: false, seq: 0, timer: null, charts: {}, theme: THEMES.light, wallAdjust: 0,
  };

  // ---------------------------------------------------------------- helpers
  function $(id) { return document.getElementById(id); }
  function isNum(v) { return typeof v === "number" && isFinite(v); }
  function num(v) { return isNum(v) ? v : null; }
  function arr(v) { return Array.isArray(v) ? v : []; }
  function obj(v) { return v && typeof v === "object" && !Array.isArray(v) ? v : null; }
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) {
      var v = attrs[k];
      if (v == null || v === false) return;
      if (k === "text") e.textContent = String(v);
      else if (k === "cls") e.className = v;
      else e.setAttribute(k, String(v));
    });
    arr(children).forEach(function (c) { if (c != null) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return e;
  }
  function clear(e) { while (e && e.firstChild) e.removeChild(e.firstChild); return e; }
  function setNum(id, value, text) {
    var e = $(id);
    if (!e) return;
    e.setAttribute("data-value", value == null ? "" : String(value));
    clear(e);
    // numbers big, units ("d", "h", "min") small
    String(text == null ? "–" : text).split(/(\s*[a-z]+\s*)/i).forEach(function (part) {
      if (!part) return;
      if (/[a-z]/i.test(part)) e.appendChild(el("span", { cls: "unit", text: part }));
      else e.appendChild(document.createTextNode(part));
    });
  }
  function safeLink(href) {
    return typeof href === "string" && /^https?:\/\//i.test(href) ? href : null;
  }

  var nf0 = new Intl.NumberFormat("en-GB", { maximumFractionDigits: 0 });
  var nf1 = new Intl.NumberFormat("en-GB", { maximumFractionDigits: 1 });
  var nf2 = new Intl.NumberFormat("en-GB", { maximumFractionDigits: 2 });
  var nf1f = new Intl.NumberFormat("en-GB", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  function fmtInt(v) { return isNum(v) ? nf0.format(v) : "–"; }
  function fmtCompact(v) {
    if (!isNum(v)) return "";
    var a = Math.abs(v);
    if (a >= 1e6) return nf1.format(v / 1e6) + "M";
    if (a >= 1e4) return nf0.format(v / 1e3) + "k";
    if (a >= 1e3) return nf1.format(v / 1e3) + "k";
    if (a >= 10 || v === Math.round(v)) return nf0.format(v);
    return nf2.format(v);
  }
  // axis labels: compact, with as many decimals as it takes for neighbours to differ
  function axisNumbers(splits) {
    var big = splits.some(function (v) { return isNum(v) && Math.abs(v) >= 1e3; });
    for (var d = 0; d <= 3; d++) {
      var f = new Intl.NumberFormat("en-GB", { maximumFractionDigits: d });
      var out = splits.map(function (v) {
        if (!isNum(v)) return "";
        if (big && Math.abs(v) >= 1e3) return Math.abs(v) >= 1e6 ? f.format(v / 1e6) + "M" : f.format(v / 1e3) + "k";
        return f.format(v);
      });
      var unique = out.every(function (x, i) { return i === 0 || x !== out[i - 1]; });
      if (unique) return out;
    }
    return splits.map(fmtCompact);
  }
  function fmtAge(s) {
    if (!isNum(s)) return "–";
    s = Math.max(0, s);
    var m = Math.round(s / 60);
    if (m < 60) return m + " min";
    var h = Math.floor(s / 3600);
    if (h < 24) { var mm = Math.floor((s % 3600) / 60); return h + " h" + (mm ? " " + mm + " min" : ""); }
    var d = Math.floor(s / 86400);
    if (d < 7) { var hh = Math.floor((s % 86400) / 3600); return d + " d" + (hh ? " " + hh + " h" : ""); }
    return d + " d";
  }

  // time zone formatting (cached formatters)
  var fmtCache = {};
  function partsFmt(tz) {
    if (!fmtCache[tz]) {
      fmtCache[tz] = new Intl.DateTimeFormat("en-GB", {
        timeZone: tz, weekday: "short", day: "numeric", month: "short", year: "numeric",
        hour: "2-digit", minute: "2-digit", hourCycle: "h23",
      });
    }
    return fmtCache[tz];
  }
  function tzParts(ts, tz) {
    var out = {};
    partsFmt(tz || S.tz).formatToParts(new Date(ts * 1000)).forEach(function (p) { out[p.type] = p.value; });
    if (out.hour === "24") out.hour = "00";
    return out;
  }
  function fmtTime(ts) { if (!isNum(ts)) return "–"; var p = tzParts(ts); return p.hour + ":" + p.minute; }
  function fmtDay(ts) { var p = tzParts(ts); return p.weekday + " " + p.day + " " + p.month; }
  function fmtDateTime(ts) { if (!isNum(ts)) return "–"; return fmtDay(ts) + " " + fmtTime(ts); }
  function sameDay(a, b) { var p = tzParts(a), q = tzParts(b); return p.day === q.day && p.month === q.month && p.year === q.year; }
  function fmtWhen(ts, ref) {
    if (!isNum(ts)) return "–";
    return isNum(ref) && sameDay(ts, ref) ? fmtTime(ts) : fmtDateTime(ts);
  }
  function parseIso(s) {
    if (typeof s !== "string") return null;
    var ms = Date.parse(s);
    return isFinite(ms) ? ms / 1000 : null;
  }
  function fmtCalendarDate(s) {
    // "2026-03-11": already a date in the team's zone
    if (typeof s !== "string") return null;
    var m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
    if (!m) return s;
    var d = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], 12));
    return new Intl.DateTimeFormat("en-GB", { timeZone: "UTC", weekday: "short", day: "numeric", month: "short" }).format(d);
  }
  function validTz(tz) {
    if (typeof tz !== "string" || !tz) return false;
    try { new Intl.DateTimeFormat("en-GB", { timeZone: tz }); return true; } catch (e) { return false; }
  }
  function scopeLabel(s) {
    if (s === "all") return "All tickets";
    var i = String(s).indexOf(":");
    if (i < 0) return String(s);
    var kind = s.slice(0, i), name = s.slice(i + 1);
    return kind.charAt(0).toUpperCase() + kind.slice(1) + ": " + name;
  }
  function lastNonNull(a) {
    a = arr(a);
    for (var i = a.length - 1; i >= 0; i--) if (isNum(a[i])) return a[i];
    return null;
  }

  // ---------------------------------------------------------------- URL state
  function readUrl() {
    var q = new URLSearchParams(location.search);
    S.scope = q.get("scope") || "all";
    var r = q.get("range");
    S.range = Object.prototype.hasOwnProperty.call(RANGES, r) ? r : "week";
    S.tzParam = q.get("tz");
    S.wall = q.get("wall") === "1" || q.get("wall") === "true";
  }
  function writeUrl() {
    try {
      var q = new URLSearchParams(location.search);
      if (S.scope === "all") q.delete("scope"); else q.set("scope", S.scope);
      if (S.range === "week") q.delete("range"); else q.set("range", S.range);
      var s = q.toString();
      history.replaceState(null, "", location.pathname + (s ? "?" + s : "") + location.hash);
    } catch (e) { /* file:// in some browsers: ignore */ }
  }

  // ---------------------------------------------------------------- series preparation
  // Align every series with t, coerce to number|null, and cut to the range.
  function cut(t, seriesList) {
    t = arr(t);
    var n = t.length, asOf = S.view ? num(S.view.as_of) : null;
    var from = 0;
    var span = RANGES[S.range];
    if (isNum(asOf) && isFinite(span)) {
      var lo = asOf - span;
      var a = 0, b = n;
      while (a < b) { var mid = (a + b) >> 1; if (!(t[mid] >= lo)) a = mid + 1; else b = mid; }
      from = a;
    }
    var x = [];
    var keep = [];
    for (var i = from; i < n; i++) if (isNum(t[i])) { x.push(t[i]); keep.push(i); }
    var ys = seriesList.map(function (s) {
      s = arr(s);
      return keep.map(function (i) { return num(s[i]); });
    });
    return { x: x, ys: ys };
  }
  function hasData(a) { for (var i = 0; i < a.length; i++) if (a[i] != null) return true; return false; }

  // ---------------------------------------------------------------- chart options shared
  function axisSize(self, values, axisIdx, cycleNum) {
    var axis = self.axes[axisIdx];
    if (cycleNum > 1) return axis._size;
    var size = axis.ticks.size + axis.gap;
    var longest = (values || []).reduce(function (acc, v) {
      var s = String(v == null ? "" : v).split("\n").reduce(function (p, c) { return c.length > p.length ? c : p; }, "");
      return s.length > acc.length ? s : acc;
    }, "");
    if (longest) { self.ctx.font = axis.font[0]; size += self.ctx.measureText(longest).width / (window.devicePixelRatio || 1); }
    return Math.ceil(size) + 4;
  }
  function fontPx() { return S.wall ? 15 : 12; }
  function axisFont() { return fontPx() + "px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"; }
  function labelFont() { return "600 " + fontPx() + "px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"; }

  function timeAxis() {
    var th = S.theme;
    return {
      stroke: th.axis, font: axisFont(), grid: { stroke: th.grid, width: 1 }, ticks: { stroke: th.tick, width: 1, size: 5 },
      space: S.wall ? 110 : 100,
      size: S.wall ? 52 : 44,
      values: function (u, splits, ai, space, incr) {
        var prev = null;
        return splits.map(function (ts) {
          if (!isNum(ts)) return "";
          var p = tzParts(ts);
          var dayKey = p.year + p.month + p.day;
          var s;
          if (incr >= 86400 - 1) s = p.day + " " + p.month;
          else s = p.hour + ":" + p.minute + (prev !== dayKey ? "\n" + p.weekday + " " + p.day + " " + p.month : "");
          prev = dayKey;
          return s;
        });
      },
    };
  }
  function yAxis(label, opts) {
    var th = S.theme;
    if (compact) label = null;
    var a = {
      stroke: th.axis, font: axisFont(), labelFont: labelFont(), label: label, labelSize: fontPx() + 8, labelGap: 0,
      grid: { stroke: th.grid, width: 1 }, ticks: { stroke: th.tick, width: 1, size: 4 },
      size: axisSize,
      values: function (u, splits) { return axisNumbers(splits); },
    };
    if (opts) Object.keys(opts).forEach(function (k) { a[k] = opts[k]; });
    return a;
  }
  // legend values: at the cursor, or the latest value when the cursor is off the chart
  function latestIdx(u, si) {
    var d = u.data && u.data[si];
    if (!d) return null;
    for (var i = d.length - 1; i >= 0; i--) if (d[i] != null) return i;
    return null;
  }
  function legendValue(fmt) {
    return function (u, v, si, idx) {
      if (idx == null) { idx = latestIdx(u, si); v = idx == null ? null : u.data[si][idx]; }
      return isNum(v) ? fmt(v, idx, si) : "–";
    };
  }
  function xSeries() {
    return { label: "Time", value: legendValue(function (v) { return fmtDateTime(v); }) };
  }
  function line(label, stroke, extra) {
    var s = {
      label: label, stroke: stroke, width: S.wall ? 2.5 : 2, spanGaps: false, points: { show: false },
      value: legendValue(fmtCompact),
    };
    if (extra) Object.keys(extra).forEach(function (k) { s[k] = extra[k]; });
    return s;
  }

  // ---------------------------------------------------------------- chart specs
  function windowSeries(flow, key, w) {
    var o = obj(flow[key]);
    return o ? arr(o[w]) : [];
  }
  function specHeadline(v) {
    var th = S.theme, flow = obj(v.flow) || {};
    var wins = arr(v.windows).length ? arr(v.windows) : ["24h", "7d"];
    var cand = [];
    if (wins.indexOf("24h") >= 0) {
      cand.push({ s: windowSeries(flow, "inflow", "24h"), opt: line("Inflow 24h", th.inflow) });
      cand.push({ s: windowSeries(flow, "outflow", "24h"), opt: line("Outflow 24h", th.outflow) });
    }
    if (wins.indexOf("7d") >= 0) {
      var per = function (a) { return arr(a).map(function (x) { return isNum(x) ? x / 7 : null; }); };
      var dash = { dash: [6, 5], width: S.wall ? 2 : 1.5 };
      cand.push({ s: per(windowSeries(flow, "inflow", "7d")), opt: line("Inflow 7d, per day", th.inflow7, dash) });
      cand.push({ s: per(windowSeries(flow, "outflow", "7d")), opt: line("Outflow 7d, per day", th.outflow7, dash) });
    }
    var c = cut(flow.t, cand.map(function (k) { return k.s; }));
    var used = [], data = [c.x];
    c.ys.forEach(function (y, i) { if (hasData(y)) { used.push(cand[i].opt); data.push(y); } });
    if (!c.x.length || !used.length) return null;
    var intervals = arr(v.alerts && v.alerts.headline).filter(Array.isArray);
    var asOf = num(v.as_of);
    return {
      sig: "headline|" + used.map(function (s) { return s.label; }).join(","),
      data: data,
      ctx: { intervals: intervals, asOf: asOf },
      opts: function (ctx) {
        return {
          series: [xSeries()].concat(used),
          axes: [timeAxis(), yAxis("tickets per day")],
          scales: { y: { range: function (u, mn, mx) { return [0, mx > 0 ? mx * 1.08 : 1]; } } },
          hooks: { drawClear: [function (u) { shadeIntervals(u, ctx); }] },
        };
      },
    };
  }
  function shadeIntervals(u, ctx) {
    var th = S.theme, c = u.ctx, bb = u.bbox;
    var xmin = u.scales.x.min, xmax = u.scales.x.max;
    if (!isNum(xmin) || !isNum(xmax)) return;
    c.save();
    ctx.intervals.forEach(function (iv) {
      var a = num(iv[0]), b = iv[1] == null ? (isNum(ctx.asOf) ? ctx.asOf : xmax) : num(iv[1]);
      if (a == null || b == null || b < xmin || a > xmax) return;
      var x0 = u.valToPos(Math.max(a, xmin), "x", true), x1 = u.valToPos(Math.min(b, xmax), "x", true);
      var w = Math.max(1, x1 - x0);
      c.fillStyle = th.firing;
      c.fillRect(x0, bb.top, w, bb.height);
      c.fillStyle = th.firingEdge;
      c.fillRect(x0, bb.top, w, Math.max(2, 3 * (window.devicePixelRatio || 1)));
    });
    c.restore();
  }
  function specLevel(v) {
    var th = S.theme, flow = obj(v.flow) || {};
    var c = cut(flow.t, [flow.open, flow.band_low, flow.band_high, flow.days_of_capacity]);
    if (!c.x.length || !hasData(c.ys[0])) return null;
    var hasBand = hasData(c.ys[1]) && hasData(c.ys[2]);
    var hasDoc = hasData(c.ys[3]);
    var series = [xSeries(), line("Open", th.open, { width: S.wall ? 3 : 2.25 })];
    var data = [c.x, c.ys[0]];
    var bands;
    if (hasBand) {
      series.push(line("Band low", th.bandEdge, { width: 1 }));
      series.push(line("Band high", th.bandEdge, { width: 1 }));
      data.push(c.ys[1], c.ys[2]);
      bands = [{ series: [3, 2], fill: th.band }];
    }
    if (hasDoc) {
      series.push(line("Days of capacity", th.doc, { scale: "d", width: 1.5, dash: [2, 3],
        value: legendValue(function (x) { return nf1f.format(x) + " d"; }) }));
      data.push(c.ys[3]);
    }
    var axes = [timeAxis(), yAxis("open tickets")];
    if (hasDoc) axes.push(yAxis("days of capacity", { scale: "d", side: 1, grid: { show: false },
      values: function (u, splits) { return splits.map(function (s) { return nf1.format(s) + " d"; }); } }));
    return {
      sig: "level|" + hasBand + "|" + hasDoc,
      data: data, ctx: {},
      opts: function () {
        return {
          series: series, axes: axes, bands: bands,
          scales: {
            y: { range: function (u, mn, mx) { return [0, mx > 0 ? mx * 1.08 : 1]; } },
            d: { range: function (u, mn, mx) { return [0, mx > 0 ? mx * 1.15 : 1]; } },
          },
        };
      },
    };
  }
  function specCfd(v) {
    var th = S.theme, cfd = obj(v.cfd) || {};
    var c = cut(cfd.t, [cfd.arrivals, cfd.departures]);
    if (!c.x.length || !hasData(c.ys[0]) || !hasData(c.ys[1])) return null;
    return {
      sig: "cfd", data: [c.x, c.ys[0], c.ys[1]], ctx: {},
      opts: function () {
        return {
          series: [xSeries(), line("Arrivals", th.arrivals), line("Departures", th.departures)],
          bands: [{ series: [1, 2], fill: th.backlog }],
          axes: [timeAxis(), yAxis("cumulative tickets")],
        };
      },
    };
  }
  function specAging(v) {
    var th = S.theme, aging = obj(v.aging) || {}, bandsObj = obj(aging.bands) || {};
    var keys = AGE_BANDS.filter(function (b) { return Array.isArray(bandsObj[b[0]]); });
    Object.keys(bandsObj).forEach(function (k) {
      if (!AGE_BANDS.some(function (b) { return b[0] === k; }) && Array.isArray(bandsObj[k])) keys.push([k, k.replace(/^age_/, "")]);
    });
    if (!keys.length) return null;
    var c = cut(aging.t, keys.map(function (b) { return bandsObj[b[0]]; }));
    if (!c.x.length || !c.ys.some(hasData)) return null;
    // stack: cumulative sums, youngest at the bottom; a point where every band is null stays a gap
    var n = c.x.length, stacked = [], running = new Array(n).fill(0), anyAt = new Array(n).fill(false);
    c.ys.forEach(function (y) { for (var i = 0; i < n; i++) if (y[i] != null) anyAt[i] = true; });
    c.ys.forEach(function (y) {
      var s = new Array(n);
      for (var i = 0; i < n; i++) {
        if (!anyAt[i]) { s[i] = null; continue; }
        running[i] += y[i] == null ? 0 : y[i];
        s[i] = running[i];
      }
      stacked.push(s);
    });
    var raw = c.ys;
    var series = [xSeries()], bands = [];
    keys.forEach(function (b, k) {
      var col = th.ages[Math.min(k, th.ages.length - 1)];
      var s = line(b[1], col, { width: 1,
        value: legendValue(function (x, idx, si) { var r = raw[si - 1][idx]; return isNum(r) ? fmtInt(r) : "–"; }) });
      if (k === 0) s.fill = col;
      else bands.push({ series: [k + 1, k], fill: col });
      series.push(s);
    });
    return {
      sig: "aging|" + keys.map(function (b) { return b[0]; }).join(","),
      data: [c.x].concat(stacked), ctx: {},
      opts: function () {
        return {
          series: series, bands: bands, axes: [timeAxis(), yAxis("open tickets")],
          scales: { y: { range: function (u, mn, mx) { return [0, mx > 0 ? mx * 1.05 : 1]; } } },
        };
      },
    };
  }
  function specIndicators(v) {
    var th = S.theme, ind = obj(v.indicators) || {};
    var pct = function (a) { return arr(a).map(function (x) { return isNum(x) ? x * 100 : null; }); };
    var hrs = function (a) { return arr(a).map(function (x) { return isNum(x) ? x / 3600 : null; }); };
    var pctVal = legendValue(function (x) { return nf1.format(x) + " %"; });
    var hVal = legendValue(function (x) { return nf1.format(x) + " h"; });
    var cand = [
      { s: pct(ind.reopen_rate), opt: line("Reopen", th.reopen, { value: pctVal }) },
      { s: pct(ind.recontact_rate), opt: line("Recontact", th.recontact, { value: pctVal }) },
      { s: pct(ind.deflection_rate), opt: line("Deflection", th.deflection, { value: pctVal, width: 1.5 }) },
      { s: hrs(ind.first_response_p50_seconds), opt: line("First response p50", th.frt, { scale: "h", value: hVal, width: 1.5 }) },
      { s: hrs(ind.first_response_p90_seconds), opt: line("First response p90", th.frt, { scale: "h", value: hVal, width: 1.5, dash: [6, 4] }) },
    ];
    var c = cut(ind.t, cand.map(function (k) { return k.s; }));
    var used = [], data = [c.x];
    c.ys.forEach(function (y, i) { if (hasData(y)) { used.push(cand[i].opt); data.push(y); } });
    if (!c.x.length || !used.length) return null;
    var hasPct = used.some(function (s) { return !s.scale; });
    var hasH = used.some(function (s) { return s.scale === "h"; });
    var axes = [timeAxis()];
    if (hasPct) axes.push(yAxis("rate %", { values: function (u, sp) { return sp.map(function (s) { return nf1.format(s) + "%"; }); } }));
    if (hasH) axes.push(yAxis("first response, h", { scale: "h", side: hasPct ? 1 : 3, grid: { show: hasPct ? false : true },
      values: function (u, sp) { return sp.map(function (s) { return nf1.format(s) + " h"; }); } }));
    return {
      sig: "ind|" + used.map(function (s) { return s.label; }).join(","),
      data: data, ctx: {},
      opts: function () {
        return {
          series: [xSeries()].concat(used), axes: axes,
          scales: {
            y: { range: function (u, mn, mx) { return [0, mx > 0 ? mx * 1.1 : 1]; } },
            h: { range: function (u, mn, mx) { return [0, mx > 0 ? mx * 1.1 : 1]; } },
          },
        };
      },
    };
  }
  var compact = false; // wall mode, small secondary charts: no axis titles (the caption says it)
  var SPECS = { headline: specHeadline, level: specLevel, cfd: specCfd, aging: specAging, indicators: specIndicators };

  // ---------------------------------------------------------------- chart lifecycle
  function chartHeight(name) {
    var main = name === "headline" || name === "level";
    var h = window.innerHeight || 800, w = window.innerWidth || 1200;
    if (S.wall) {
      if (w < 1200) return main ? Math.round(Math.max(260, h * 0.4)) : 220;
      // fit everything on one screen: the two main charts get most of what is left below the numbers
      var charts = document.querySelector(".charts");
      var top = charts ? charts.getBoundingClientRect().top + (window.scrollY || 0) : 320;
      var plots = h - top - 24 - 2 * 112 - 16 - S.wallAdjust;
      var m = Math.max(240, Math.round(plots * 0.66));
      return main ? m : Math.max(110, Math.round(plots - m));
    }
    if (w < 700) return main ? 220 : 190;
    return main ? 280 : 240;
  }
  function placeholder(box, text) {
    var p = box.querySelector(".chart-empty");
    if (!p) { p = el("div", { cls: "chart-empty" }); box.appendChild(p); }
    p.textContent = text;
    p.hidden = false;
    p.style.height = chartHeight(box.getAttribute("data-chart")) + "px";
  }
  function destroyChart(name) {
    var c = S.charts[name];
    if (c && c.u) { try { c.u.destroy(); } catch (e) { /* already gone */ } }
    delete S.charts[name];
  }
  function drawChart(name) {
    var box = document.querySelector('[data-chart="' + name + '"]');
    if (!box) return;
    try {
      compact = S.wall && name !== "headline" && name !== "level";
      var spec = S.view ? SPECS[name](S.view) : null;
      if (!spec || typeof window.uPlot !== "function") {
        destroyChart(name);
        placeholder(box, typeof window.uPlot !== "function" ? "chart library not loaded" : (S.view ? "no data yet" : "waiting for data"));
        box.setAttribute("data-points", "0");
        return;
      }
      var p = box.querySelector(".chart-empty");
      if (p) p.hidden = true;
      var sig = spec.sig + "|" + S.tz + "|" + S.wall;
      var cur = S.charts[name];
      var width = Math.max(200, box.clientWidth || 600), height = chartHeight(name);
      if (cur && cur.sig === sig) {
        cur.ctx.intervals = spec.ctx.intervals; cur.ctx.asOf = spec.ctx.asOf;
        cur.u.setData(spec.data);
        if (cur.u.width !== width || cur.u.height !== height) cur.u.setSize({ width: width, height: height });
      } else {
        destroyChart(name);
        var ctx = spec.ctx || {};
        var opts = spec.opts(ctx);
        opts.width = width;
        opts.height = height;
        opts.tzDate = function (ts) { return uPlot.tzDate(new Date(ts * 1e3), S.tz); };
        opts.legend = { show: true, live: true };
        opts.cursor = { drag: { x: false, y: false }, points: { size: S.wall ? 8 : 6 } };
        opts.padding = [12, 22, 0, 4];
        var u = new uPlot(opts, spec.data, box);
        S.charts[name] = { u: u, sig: sig, ctx: ctx };
      }
      box.setAttribute("data-points", String(spec.data[0].length));
    } catch (e) {
      destroyChart(name);
      placeholder(box, "chart unavailable");
      box.setAttribute("data-points", "0");
      console.error("flowgauge: drawing chart " + name + " failed", e); // a real bug: surface it
    }
  }
  function drawCharts() { Object.keys(SPECS).forEach(drawChart); }

  var resizePending = false;
  function resizeCharts() {
    if (resizePending) return;
    resizePending = true;
    requestAnimationFrame(function () {
      resizePending = false;
      try { fitNumbers(); } catch (e) { /* cosmetic */ }
      Object.keys(S.charts).forEach(function (name) {
        var c = S.charts[name], box = document.querySelector('[data-chart="' + name + '"]');
        if (!c || !box) return;
        var w = Math.max(200, box.clientWidth), h = chartHeight(name);
        if (w && (c.u.width !== w || c.u.height !== h)) {
          try { c.u.setSize({ width: w, height: h }); } catch (e) { /* chart gone */ }
        }
      });
      requestAnimationFrame(function () { try { fitWall(0); } catch (e) { /* cosmetic */ } });
    });
  }

  // ---------------------------------------------------------------- header, numbers
  function renderScopes() {
    var sel = $("scope");
    if (!sel) return;
    var list = arr(S.view && S.view.scopes).filter(function (s) { return typeof s === "string"; });
    if (S.mode === "static" && S.views) {
      list = list.filter(function (s) { return Object.prototype.hasOwnProperty.call(S.views, s); });
      Object.keys(S.views).forEach(function (s) { if (list.indexOf(s) < 0) list.push(s); });
    }
    if (list.indexOf(S.scope) < 0) list.unshift(S.scope);
    var key = list.join("\n");
    if (sel.getAttribute("data-options") !== key) {
      clear(sel);
      list.forEach(function (s) { sel.appendChild(el("option", { value: s, text: scopeLabel(s) })); });
      sel.setAttribute("data-options", key);
    }
    sel.value = S.scope;
  }
  function renderRanges() {
    document.querySelectorAll("[data-range]").forEach(function (b) {
      var on = b.getAttribute("data-range") === S.range;
      b.setAttribute("aria-pressed", on ? "true" : "false");
      b.classList.toggle("on", on);
    });
  }
  function staleReason() {
    if (S.unreachable) return "service unreachable";
    var v = S.view;
    return v && typeof v.stale === "string" && v.stale ? v.stale : null;
  }
  function renderHeader() {
    var v = S.view, asOf = v ? num(v.as_of) : null;
    var e = $("as-of");
    if (e) {
      e.setAttribute("data-value", asOf == null ? "" : String(asOf));
      clear(e);
      var none = v ? "waiting for data " : S.mode === "static" ? "no data " : S.unreachable ? "no data yet " : "loading… ";
      e.appendChild(document.createTextNode(asOf == null ? none : "as of " + fmtDateTime(asOf) + " "));
      e.appendChild(el("span", { cls: "tz", id: "tz", "data-testid": "tz", text: S.tz }));
    }
    var sn = $("scope-name");
    if (sn) sn.textContent = scopeLabel(S.scope);
    // stale badge: present only when stale
    var slot = $("stale-slot"), reason = staleReason();
    if (slot) {
      var old = $("stale");
      if (!reason) { if (old) old.remove(); }
      else {
        if (!old) { old = el("span", { id: "stale", "data-testid": "stale", cls: "stale", role: "status" }); slot.appendChild(old); }
        old.setAttribute("data-value", reason);
        old.textContent = "STALE · " + reason;
        old.title = reason;
      }
    }
    var meta = $("meta");
    if (meta) {
      var bits = [];
      if (v && S.mode === "live") {
        var rec = num(v.received_at);
        bits.push(rec != null ? "live · last record " + fmtWhen(rec, num(v.now)) : "live");
      } else if (v && S.mode === "static") {
        bits.push(isNum(v.now) ? "report built " + fmtDateTime(v.now) : "report");
      }
      if (v && isNum(v.skipped) && v.skipped > 0) bits.push(fmtInt(v.skipped) + " malformed record" + (v.skipped === 1 ? "" : "s") + " skipped");
      meta.textContent = bits.join(" · ");
    }
    var notice = $("notice");
    if (notice) {
      if (v && asOf == null) {
        notice.hidden = false;
        notice.textContent = S.mode === "live"
          ? "Waiting for data: no records for " + scopeLabel(S.scope) + " yet. This page updates by itself."
          : "No data for " + scopeLabel(S.scope) + " in this report.";
      } else if (!v && S.mode === "static") {
        notice.hidden = false;
        notice.textContent = "No data for " + scopeLabel(S.scope) + " in this report.";
      } else if (!v && S.unreachable) {
        notice.hidden = false;
        notice.textContent = "The flowgauge service cannot be reached. Retrying…";
      } else notice.hidden = true;
    }
    document.title = "flowgauge · " + scopeLabel(S.scope) + (reason ? " · STALE" : "");
  }

  function sumSla(sla, key) {
    sla = obj(sla);
    if (!sla) return null;
    var total = 0, seen = false;
    Object.keys(sla).forEach(function (t) {
      var o = obj(sla[t]);
      if (o && isNum(o[key])) { total += o[key]; seen = true; }
    });
    return seen ? total : null;
  }
  function toggleClass(id, cls, on) { var e = $(id); if (e) e.classList.toggle(cls, !!on); }

  function renderNumbers() {
    var v = S.view || {}, latest = obj(v.latest) || {};
    var lf = obj(latest.flow), la = obj(latest.aging), li = obj(latest.indicators);
    var flow = obj(v.flow) || {};
    var open = lf ? num(lf.open) : null;
    setNum("open", open, fmtInt(open));
    var bl = lastNonNull(flow.band_low), bh = lastNonNull(flow.band_high);
    $("open-sub").textContent = bl != null && bh != null ? "healthy " + fmtInt(bl) + "–" + fmtInt(bh) : "";

    var in24 = lf && obj(lf.inflow) ? num(lf.inflow["24h"]) : null;
    var out24 = lf && obj(lf.outflow) ? num(lf.outflow["24h"]) : null;
    var in7 = lf && obj(lf.inflow) ? num(lf.inflow["7d"]) : null;
    var out7 = lf && obj(lf.outflow) ? num(lf.outflow["7d"]) : null;
    setNum("inflow-24h", in24, fmtInt(in24));
    setNum("outflow-24h", out24, fmtInt(out24));
    $("inflow-sub").textContent = in7 != null ? "7d: " + nf0.format(in7 / 7) + " per day" : "";
    $("outflow-sub").textContent = out7 != null ? "7d: " + nf0.format(out7 / 7) + " per day" : "";
    var net = in24 != null && out24 != null ? in24 - out24 : null;
    setNum("net-24h", net, net == null ? "–" : (net > 0 ? "+" : net < 0 ? "−" : "") + fmtInt(Math.abs(net)));
    toggleClass("net-24h", "bad", net != null && net > 0);
    toggleClass("net-24h", "good", net != null && net < 0);
    $("net-sub").textContent = net == null ? "" : net > 0 ? "backlog growing" : net < 0 ? "backlog shrinking" : "steady";

    var doc = li ? num(li.days_of_capacity) : null;
    if (doc == null) doc = lastNonNull(flow.days_of_capacity);
    var band = obj(v.band) || {};
    var lo = num(band.low_days), hi = num(band.high_days);
    setNum("days-of-capacity", doc, doc == null ? "–" : nf1f.format(doc) + " d");
    var above = doc != null && hi != null && doc > hi, below = doc != null && lo != null && doc < lo;
    toggleClass("days-of-capacity", "bad", above);
    toggleClass("days-of-capacity", "good", doc != null && !above && !below && lo != null);
    $("doc-sub").textContent = lo != null && hi != null
      ? "healthy " + nf1.format(lo) + "–" + nf1.format(hi) + " d" + (above ? " · above band" : below ? " · below band" : doc != null ? " · in band" : "")
      : "";

    var oldest = la ? num(la.oldest_age_seconds) : null;
    var asOf = num(v.as_of), now = num(v.now);
    setNum("oldest-age", oldest, fmtAge(oldest));
    $("oldest-sub").textContent = oldest != null && asOf != null ? "as of " + fmtWhen(asOf, now) : "";
    // Live only: a report's history ends at its as_of, and the day it is read says nothing
    // of the ticket's age (March's oldest read in December is no 9-month-old ticket).
    var live = S.mode === "live";
    var est = live && oldest != null && asOf != null && now != null ? oldest + Math.max(0, now - asOf) : null;
    setNum("oldest-age-now", est, est == null ? "–" : "~" + fmtAge(est));
    $("oldest-now-row").hidden = !live;

    var untouched = la ? num(la.untouched) : null;
    setNum("untouched", untouched, fmtInt(untouched));
    var risk = la ? sumSla(la.sla, "at_risk") : null, br = la ? sumSla(la.sla, "breached") : null;
    setNum("sla-at-risk", risk, fmtInt(risk));
    setNum("sla-breached", br, fmtInt(br));
    toggleClass("sla-at-risk", "warn", risk != null && risk > 0);
    toggleClass("sla-breached", "bad", br != null && br > 0);

    var firing = arr(v.alerts && v.alerts.firing);
    setNum("firing", S.view ? firing.length : null, S.view ? String(firing.length) : "–");
    toggleClass("firing", "bad", firing.length > 0);
    toggleClass("firing", "good", S.view && firing.length === 0);
    var rules = [];
    firing.forEach(function (a) { if (a && typeof a.rule === "string" && rules.indexOf(a.rule) < 0) rules.push(a.rule.replace(/_/g, " ")); });
    $("firing-sub").textContent = S.view ? (rules.length ? rules.join(", ") : "all quiet") : "";
  }

  // ---------------------------------------------------------------- tables
  function table(headers, rows, cls) {
    var t = el("table", { cls: cls || "" });
    var tr = el("tr");
    headers.forEach(function (h) { tr.appendChild(el("th", { text: h[0], cls: h[1] || "" })); });
    t.appendChild(el("thead", null, [tr]));
    var tb = el("tbody");
    rows.forEach(function (r) {
      var row = el("tr");
      r.forEach(function (c, i) {
        var td = el("td", { cls: headers[i] && headers[i][1] || "" });
        if (c instanceof Node) td.appendChild(c); else td.textContent = c == null ? "–" : String(c);
        row.appendChild(td);
      });
      tb.appendChild(row);
    });
    t.appendChild(tb);
    return el("div", { cls: "table-wrap" }, [t]);
  }
  function empty(text) { return el("p", { cls: "empty", text: text }); }
  function badge(text, kind) { return el("span", { cls: "badge " + (kind || ""), text: text }); }
  function ticketLink(id, link) {
    var href = safeLink(link);
    var label = String(id == null ? "–" : id);
    return href ? el("a", { href: href, target: "_blank", rel: "noopener noreferrer", text: label }) : el("span", { text: label });
  }
  function since(ts) {
    // how long, on the data's clock (as_of; a replayed report's wall clock would mislead)
    var now = S.view ? (num(S.view.as_of) != null ? num(S.view.as_of) : num(S.view.now)) : null;
    if (!isNum(ts) || now == null) return "";
    return "for " + fmtAge(Math.max(0, now - ts));
  }

  function alertNum(a, x) {
    // age rules carry seconds
    return /age/.test(String(a.rule || "")) ? fmtAge(x) : nf2.format(x);
  }
  function renderFiring() {
    var box = clear($("firing-now")), strip = $("firing-strip");
    var firing = arr(S.view && S.view.alerts && S.view.alerts.firing).filter(obj);
    var now = S.view ? num(S.view.now) : null;
    if (strip) {
      clear(strip);
      strip.hidden = !firing.length;
      var shown = firing.length > 3 ? 2 : 3;
      firing.slice(0, shown).forEach(function (a) {
        var at = parseIso(a.at);
        strip.appendChild(el("div", { cls: "strip-item" }, [
          el("span", { cls: "dot" }), el("span", { cls: "strip-text", text: a.summary || a.rule || "alert" }),
          el("span", { cls: "strip-since", text: at != null ? "since " + fmtWhen(at, now) : "" }),
        ]));
      });
      if (firing.length > shown) strip.appendChild(el("div", { cls: "strip-more", text: "+ " + (firing.length - shown) + " more firing" }));
    }
    if (!box) return;
    if (!S.view) { box.appendChild(empty("waiting for data")); return; }
    if (!firing.length) { box.appendChild(el("p", { cls: "all-quiet", text: "Nothing is firing." })); return; }
    var list = el("ul", { cls: "firing-list" });
    firing.forEach(function (a) {
      var at = parseIso(a.at);
      list.appendChild(el("li", null, [
        el("div", { cls: "summary", text: a.summary || a.rule || "alert" }),
        el("div", { cls: "detail" }, [
          el("span", { cls: "rule", text: String(a.rule || "").replace(/_/g, " ") }),
          el("span", { text: at != null ? " · since " + fmtWhen(at, now) + " (" + since(at) + ")" : "" }),
          el("span", { text: isNum(a.value) && isNum(a.threshold) ? " · value " + alertNum(a, a.value) + ", threshold " + alertNum(a, a.threshold) : "" }),
        ]),
      ]));
    });
    box.appendChild(list);
  }

  function renderTimeline() {
    var box = clear($("timeline"));
    if (!box) return;
    var tl = arr(S.view && S.view.alerts && S.view.alerts.timeline).filter(obj);
    if (!tl.length) { box.appendChild(empty(S.view ? "No alerts yet." : "waiting for data")); return; }
    var now = S.view ? num(S.view.now) : null;
    box.appendChild(table([["When", "nowrap"], ["State"], ["What"]], tl.map(function (a) {
      var at = parseIso(a.at);
      return [at != null ? fmtWhen(at, now) : "–",
        badge(a.state === "firing" ? "firing" : a.state === "resolved" ? "resolved" : String(a.state || "?"), a.state === "firing" ? "bad" : "ok"),
        a.summary || a.rule || ""];
    }), "timeline"));
  }

  function renderForecast() {
    var box = clear($("forecast"));
    if (!box) return;
    var f = obj(S.view && S.view.latest && S.view.latest.forecast);
    if (!f) { box.appendChild(empty(S.view ? "No forecast yet." : "waiting for data")); return; }
    if (f.status === "insufficient_history") {
      box.appendChild(el("p", { cls: "plain", text: "Insufficient history: " +
        (isNum(f.days_sampled) ? fmtInt(f.days_sampled) + " whole days seen so far" : "not enough whole days seen yet") +
        ". The forecast starts once there is enough." }));
      return;
    }
    var horizon = isNum(f.horizon_days) ? f.horizon_days : null;
    var date = function (s) { return s ? fmtCalendarDate(s) : "not within " + (horizon != null ? horizon + " days" : "the horizon"); };
    var status = f.target_status;
    var statusBadge = status === "met" ? badge("met: in band now", "ok") : status === "missed" ? badge("missed", "bad") : status === "open" ? badge("open", "warn") : badge("–");
    var bandLine = isNum(f.band_tickets) ? "≤ " + fmtInt(f.band_tickets) + " open" : "in band";
    var dl = el("dl", { cls: "facts" }, [
      el("dt", { text: "Back in band (" + bandLine + ")" }),
      el("dd", null, [
        el("span", { cls: "q" }, [el("small", { text: "likely (p50) " }), el("b", { text: date(f.in_band_by_p50) })]),
        el("span", { cls: "q" }, [el("small", { text: "p85 " }), el("b", { text: date(f.in_band_by_p85) })]),
        el("span", { cls: "q" }, [el("small", { text: "p95 " }), el("b", { text: date(f.in_band_by_p95) })]),
      ]),
      el("dt", { text: "Target" }),
      el("dd", null, [el("b", { text: f.target_by ? "in band by " + fmtCalendarDate(f.target_by) + " " : "no target " }), statusBadge]),
      el("dt", { text: "To hit the target (85 % sure)" }),
      el("dd", null, [
        el("span", { cls: "q" }, [el("b", { text: isNum(f.closes_needed_per_day_p85) ? "+" + fmtInt(f.closes_needed_per_day_p85) : "–" }), el("small", { text: " extra closes per day" })]),
        el("span", { cls: "q" }, [el("small", { text: "or " }), el("b", { text: isNum(f.inflow_reduction_per_day_p85) ? "−" + fmtInt(f.inflow_reduction_per_day_p85) : "–" }), el("small", { text: " arrivals per day" })]),
      ]),
    ]);
    box.appendChild(dl);
    // chance of being in band by business day N
    var probs = [];
    for (var d = 1; d <= 30; d++) { var p = f["p_in_band_d" + d]; if (p === undefined) break; probs.push(num(p)); }
    if (probs.some(isNum)) {
      var bars = el("div", { cls: "pbars", role: "img", "aria-label": "chance of being in band by business day" });
      probs.forEach(function (p, i) {
        var pct = isNum(p) ? Math.round(p * 100) : null;
        var b = el("div", { cls: "pbar", title: "business day " + (i + 1) + ": " + (pct == null ? "–" : pct + " %") }, [
          el("div", { cls: "fill" + (isNum(p) && p >= 0.85 ? " hi" : ""), style: "height:" + (pct == null ? 0 : Math.max(2, pct)) + "%" }),
          el("span", { cls: "d", text: String(i + 1) }),
        ]);
        bars.appendChild(b);
      });
      box.appendChild(el("div", { cls: "pbars-wrap" }, [el("div", { cls: "pbars-label", text: "chance of being back in band, by business day" }), bars]));
    }
    box.appendChild(el("p", { cls: "footnote", text: [
      isNum(f.paths) ? fmtInt(f.paths) + " sampled futures" : null,
      isNum(f.weeks) ? f.weeks + " weeks of history" : null,
      isNum(f.days_sampled) ? f.days_sampled + " days sampled" : null,
    ].filter(Boolean).join(" · ") }));
  }

  function renderPull() {
    var box = clear($("pull"));
    if (!box) return;
    var panel = box.closest(".panel");
    var isQueue = /^queue:/.test(S.scope);
    var p = obj(S.view && S.view.latest && S.view.latest.pull);
    // the pull list only exists for queue scopes: hide the panel elsewhere
    if (panel) panel.hidden = !isQueue && !p;
    if (!p) {
      box.appendChild(empty(!S.view ? "waiting for data" : isQueue ? "No pull list yet." : "The pull list is per queue: pick a queue scope."));
      return;
    }
    var w = obj(p.weights) || {};
    var picks = arr(p.picks).filter(obj);
    if (!picks.length) { box.appendChild(empty("Nothing to pull.")); return; }
    box.appendChild(table([["#", "n"], ["Ticket"], ["Score", "n"], ["Why"]], picks.map(function (k) {
      var parts = obj(k.parts) || {};
      var top = Object.keys(parts).filter(function (n) { return isNum(parts[n]); })
        .map(function (n) { return [n, parts[n], parts[n] * (isNum(w[n]) ? w[n] : 1)]; })
        .sort(function (a, b) { return b[2] - a[2]; }).slice(0, 3);
      var why = el("span", { cls: "parts" }, top.map(function (t) {
        return el("span", { cls: "part", title: t[0] + " " + nf2.format(t[1]) + " × weight " + (isNum(w[t[0]]) ? nf2.format(w[t[0]]) : "?") },
          [t[0] + " ", el("b", { text: nf2.format(t[1]) })]);
      }));
      return [isNum(k.rank) ? String(k.rank) : "–", ticketLink(k.ticket_id, k.link), isNum(k.score) ? nf2.format(k.score) : "–", why];
    }), "pull"));
    box.appendChild(el("p", { cls: "footnote", text: (isNum(p.candidates) ? fmtInt(p.candidates) + " candidates" : "") +
      (isNum(p.open) ? " of " + fmtInt(p.open) + " open" : "") }));
  }

  function renderSla() {
    var panel = $("sla-panel"), box = clear($("sla"));
    var list = S.view ? S.view.sla_tickets : null;
    if (!panel || !box) return;
    if (!Array.isArray(list)) { panel.hidden = true; return; }
    panel.hidden = false;
    list = list.filter(obj);
    if (!list.length) { box.appendChild(empty("No SLA changes yet.")); return; }
    var now = num(S.view.now);
    box.appendChild(table([["Ticket"], ["Target"], ["State"], ["Due", "nowrap"], ["Changed", "nowrap"]], list.map(function (r) {
      var due = parseIso(r.due_at), at = parseIso(r.as_of);
      return [ticketLink(r.ticket_id, r.link), TARGET_LABELS[r.target] || String(r.target || "–"),
        badge(SLA_STATE_LABELS[r.state] || String(r.state || "?"), r.state === "breached" ? "bad" : r.state === "at_risk" ? "warn" : "ok"),
        due != null ? fmtWhen(due, now) : "–", at != null ? fmtWhen(at, now) : "–"];
    }), "sla"));
  }

  // ---------------------------------------------------------------- render all
  function guard(name, fn) {
    try { fn(); } catch (e) { console.error("flowgauge: rendering " + name + " failed", e); }
  }
  function render() {
    var v = S.view;
    var tz = S.tzParam && validTz(S.tzParam) ? S.tzParam : v && validTz(v.timezone) ? v.timezone : "UTC";
    S.tz = tz;
    guard("scopes", renderScopes);
    guard("ranges", renderRanges);
    guard("header", renderHeader);
    guard("numbers", renderNumbers);
    guard("firing", renderFiring);
    drawCharts();
    guard("timeline", renderTimeline);
    guard("forecast", renderForecast);
    guard("pull", renderPull);
    guard("sla", renderSla);
    guard("fit", fitNumbers);
    if (S.wall) requestAnimationFrame(function () { guard("wall", function () { fitWall(0); }); });
    document.documentElement.setAttribute("data-ready", "1");
  }
  // wall mode: make numbers + all charts fill exactly one screen (measure, correct, at most a few passes)
  function fitWall(pass) {
    if (!S.wall || (window.innerWidth || 0) < 1200) return;
    pass = pass || 0;
    var m = document.querySelector("main");
    if (!m || !Object.keys(S.charts).length || pass > 4) return;
    var slack = window.innerHeight - m.getBoundingClientRect().bottom - (window.scrollY || 0);
    if (Math.abs(slack) <= 3) return;
    S.wallAdjust -= slack;
    Object.keys(S.charts).forEach(function (name) {
      var c = S.charts[name];
      try { c.u.setSize({ width: c.u.width, height: chartHeight(name) }); } catch (e) { /* chart gone */ }
    });
    // uPlot commits sizes in a microtask: measure again on the next frame
    requestAnimationFrame(function () { try { fitWall(pass + 1); } catch (e) { /* cosmetic */ } });
  }

  // shrink a headline number that does not fit its card (long values, narrow cards)
  // one size for all of them, so the row reads evenly
  function fitNumbers() {
    var els = Array.prototype.slice.call(document.querySelectorAll(".num .value"));
    els.forEach(function (e) { e.style.fontSize = ""; });
    var best = Infinity;
    els.forEach(function (e) {
      var size = parseFloat(getComputedStyle(e).fontSize) || 32, min = size * 0.4;
      while (e.scrollWidth > e.clientWidth + 1 && size > min) { size -= 2; e.style.fontSize = size + "px"; }
      if (!e.classList.contains("pair")) best = Math.min(best, size);
    });
    if (isFinite(best)) els.forEach(function (e) {
      if (!e.classList.contains("pair") || parseFloat(e.style.fontSize) > best) e.style.fontSize = best + "px";
    });
  }

  // ---------------------------------------------------------------- data sources
  // A report holds its views gzipped (a fifth of the size); the browser inflates them.
  function inflate(b64) {
    var bin = atob(b64), bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).json();
  }
  function loadStatic() {
    if (typeof S.config.views === "string" && S.config.encoding === "gzip+base64") {
      var packed = S.config.views;
      S.config.views = {};
      inflate(packed).then(function (views) { S.config.views = views; loadStatic(); }, function () {
        var n = $("notice");
        if (n) { n.hidden = false; n.textContent = "This browser cannot unpack this report (it needs DecompressionStream: Chrome 80, Firefox 113, Safari 16.4 or later)."; }
      });
      return;
    }
    var views = obj(S.config.views) || {};
    S.views = views;
    if (!Object.prototype.hasOwnProperty.call(views, S.scope)) {
      S.scope = Object.prototype.hasOwnProperty.call(views, "all") ? "all" : (Object.keys(views)[0] || "all");
      writeUrl();
    }
    S.view = obj(views[S.scope]);
    render();
  }
  function poll() {
    clearTimeout(S.timer);
    var seq = ++S.seq, scope = S.scope;
    var api = typeof S.config.api === "string" && S.config.api ? S.config.api : "api/view";
    var every = isNum(S.config.refresh_seconds) && S.config.refresh_seconds > 0 ? S.config.refresh_seconds : 5;
    var ctrl = typeof AbortController === "function" ? new AbortController() : null;
    var to = setTimeout(function () { if (ctrl) ctrl.abort(); }, Math.max(4000, every * 2000));
    var sep = api.indexOf("?") >= 0 ? "&" : "?";
    fetch(api + sep + "scope=" + encodeURIComponent(scope) + "&range=" + encodeURIComponent(S.range), { cache: "no-store", signal: ctrl ? ctrl.signal : undefined })
      .then(function (res) {
        if (!res.ok) throw new Error("HTTP " + res.status);
        return res.json();
      })
      .then(function (view) {
        if (seq !== S.seq) return;
        S.unreachable = false;
        S.view = obj(view);
        render();
      }, function () {
        if (seq !== S.seq) return;
        S.unreachable = true;
        if (S.view && S.view.scope !== S.scope) S.view = null;
        render();
      })
      .then(function () {
        clearTimeout(to);
        if (seq === S.seq) S.timer = setTimeout(poll, every * 1000);
      });
  }
  function refreshNow() {
    if (S.mode === "static") { S.view = obj(S.views && S.views[S.scope]); render(); }
    else poll();
  }

  // ---------------------------------------------------------------- boot
  function boot() {
    readUrl();
    if (S.wall) document.documentElement.classList.add("wall");
    S.theme = S.wall ? THEMES.dark : THEMES.light;
    var cfgEl = $("flowgauge-config");
    try { S.config = cfgEl ? JSON.parse(cfgEl.textContent || "{}") : null; } catch (e) { S.config = null; }
    if (!obj(S.config)) {
      S.config = { mode: "static", views: {} };
      var n = $("notice");
      if (n) { n.hidden = false; n.textContent = "This page has no configuration: nothing to show."; }
    }
    S.mode = S.config.mode === "live" ? "live" : "static";
    document.documentElement.setAttribute("data-mode", S.mode);

    var sel = $("scope");
    if (sel) sel.addEventListener("change", function () {
      S.scope = sel.value || "all";
      writeUrl();
      if (S.mode === "live") {
        // keep the old numbers until the new scope answers, but say which scope is coming
        var sn = $("scope-name"); if (sn) sn.textContent = scopeLabel(S.scope);
      }
      refreshNow();
    });
    document.querySelectorAll("[data-range]").forEach(function (b) {
      b.addEventListener("click", function () {
        S.range = b.getAttribute("data-range");
        writeUrl();
        if (S.mode === "live") poll();  // the service sends only the range asked for
        else render();
      });
    });
    if (typeof ResizeObserver === "function") {
      // react to width changes only (our own height changes must not loop back here)
      var ro = new ResizeObserver(function (entries) {
        var changed = entries.some(function (en) {
          var w = Math.round(en.contentRect.width), t = en.target;
          if (t._fgWidth === w) return false;
          t._fgWidth = w;
          return true;
        });
        if (changed) resizeCharts();
      });
      document.querySelectorAll("[data-chart]").forEach(function (c) { ro.observe(c); });
    }
    window.addEventListener("resize", function () { S.wallAdjust = 0; resizeCharts(); });

    if (S.mode === "static") loadStatic();
    else { render(); poll(); }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
