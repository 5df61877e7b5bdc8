/**
 * The renderings of a {@link BenchReport} that `moerun bench` prints and writes: the conditions
 * line, plain text tables (speed and quality; llama.cpp and ratios when measured) and an SVG plot.
 */
import type { BenchConditions, BenchFileResult, BenchReport, RoutingResult, Spread } from '../bench/report.js';
import { popularityBar } from '../routing.js';

/** A plain text table: one header row, right-aligned cells (left-aligned first column). */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  return [line(header), `|${widths.map((w, i) => (i === 0 ? ':' : '-') + '-'.repeat(w) + (i === 0 ? '-' : ':')).join('|')}|`, ...rows.map(line)].join('\n');
}

const mib = (n: number): string => (n / 2 ** 20).toFixed(n < 10 * 2 ** 20 ? 2 : 0);
const fmt = (x: number, digits = 1): string => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');
const rate = (s: Spread): string => `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`;

/** One line of conditions, printed above the tables. */
export function formatConditions(c: BenchConditions): string {
  return (
    `moerun ${c.moerunVersion} @ ${c.commit}, node ${c.node}, ${c.cpu}, ISA path ${c.isa}, ${c.threads} threads, ` +
    `memory bandwidth ${fmt(c.bandwidthGBs)} GB/s (read, ${c.threads} threads); load average ${fmt(c.loadAverage.start)} → ${fmt(c.loadAverage.end)} on ${c.loadAverage.cpus} CPUs; pp${c.pp} / tg${c.tg} tokens/s as median (min–max) of ${c.repeats} ` +
    `interleaved runs after a warm-up; quality over ${c.textTokens} tokens of ${c.text}`
  );
}

/** The report as plain tables (speed and quality; llama.cpp and ratios when measured). */
export function formatBenchTable(report: BenchReport): string {
  const c = report.conditions;
  const rows = report.results.map((r) => [
    r.label,
    r.type,
    mib(r.sizeBytes),
    fmt(r.bitsPerWeight, 2),
    fmt(r.moerun.loadMs, 0),
    mib(r.moerun.peakRssBytes),
    rate(r.moerun.pp),
    rate(r.moerun.tg),
    `${fmt(r.moerun.decodeGBs, 2)} / ${fmt(c.bandwidthGBs)}`,
    r.quality ? fmt(r.quality.meanKl, 5) : 'n/a',
    r.quality ? `${fmt(r.quality.top1 * 100, 1)}%` : 'n/a',
    r.quality ? fmt(r.quality.perplexity, 3) : 'n/a',
  ]);
  const out = [
    formatConditions(c),
    '',
    formatTable(
      ['file', 'type', 'MiB', 'bits/w', 'load ms', 'RSS MiB', `pp${c.pp} tok/s`, `tg${c.tg} tok/s`, 'decode GB/s / bw', 'KL vs ref', 'top-1', 'PPL'],
      rows,
    ),
  ];
  for (const r of report.routing) out.push('', ...formatRouting(r, c.text));
  const refs = [...new Set(report.results.map((r) => r.reference).filter((r): r is string => r !== null))];
  if (refs.length > 0) out.push(`quality reference: ${refs.join(', ')} (the highest-precision file of each vocabulary)`);
  if (report.results.some((r) => r.llamaCpp)) {
    const vs = report.results.map((r) => {
      const l = r.llamaCpp;
      if (!l || !('engine' in l)) return [r.label, `failed: ${l?.error ?? 'not run'}`, '', '', '', '', '', '', ''];
      return [
        r.label,
        fmt(l.loadMs, 0),
        mib(l.peakRssBytes),
        rate(r.moerun.pp),
        rate(l.pp),
        `${fmt(r.ratio!.pp, 2)}×`,
        rate(r.moerun.tg),
        rate(l.tg),
        `${fmt(r.ratio!.tg, 2)}×`,
      ];
    });
    out.push(
      '',
      formatTable(['file', 'llama.cpp load ms', 'llama.cpp RSS MiB', `moerun pp${c.pp}`, `llama.cpp pp${c.pp}`, 'pp ratio', `moerun tg${c.tg}`, `llama.cpp tg${c.tg}`, 'tg ratio'], vs),
      'ratio = moerun ÷ llama.cpp (medians); > 1 means moerun is faster',
    );
  }
  return out.join('\n');
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Ticks at 1, 2 or 5 × 10^k covering [0, max]. */
export function niceTicks(max: number, target = 5): number[] {
  if (!(max > 0) || !Number.isFinite(max)) return [0, 1];
  const raw = max / target;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw) ?? 10 * pow;
  const ticks: number[] = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1]! < max) ticks.push(Number((ticks[ticks.length - 1]! + step).toPrecision(12)));
  return ticks;
}

/**
 * An SVG plot of decode speed (tg tokens/s) against KL divergence from the reference: one labelled
 * point per file (up and to the left is better), with llama.cpp's decode speed as hollow points
 * when measured.
 */
export function renderBenchSvg(report: BenchReport, title = 'Decode speed vs quality loss'): string {
  const W = 720;
  const H = 440;
  const m = { left: 74, right: 28, top: 56, bottom: 78 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const pts = report.results.filter((r) => r.quality && Number.isFinite(r.quality.meanKl));
  const llamaTg = (r: BenchFileResult): number | null => (r.llamaCpp && 'engine' in r.llamaCpp ? r.llamaCpp.tg.median : null);
  const xMax = Math.max(...pts.map((r) => r.quality!.meanKl), 1e-6) * 1.12;
  const yMax = Math.max(...pts.map((r) => Math.max(r.moerun.tg.median, llamaTg(r) ?? 0)), 1e-6) * 1.12;
  const xt = niceTicks(xMax);
  const yt = niceTicks(yMax);
  const X = (v: number): number => m.left + (v / xt[xt.length - 1]!) * pw;
  const Y = (v: number): number => m.top + ph - (v / yt[yt.length - 1]!) * ph;
  const f = (n: number): string => n.toFixed(1);
  const tickLabel = (v: number): string => (v === 0 ? '0' : Math.abs(v) < 0.01 ? v.toExponential(0) : String(Number(v.toPrecision(3))));
  const c = report.conditions;
  const s: string[] = [];
  s.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  s.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  s.push(`<text x="${m.left}" y="24" font-size="16" font-weight="bold" fill="#222222">${escapeXml(title)}</text>`);
  s.push(
    `<text x="${m.left}" y="42" fill="#666666">${escapeXml(`${c.cpu}, ${c.isa}, ${c.threads} threads, moerun @ ${c.commit}; up and left is better`)}</text>`,
  );
  s.push('<g stroke="#e6e6e6" stroke-width="1">');
  for (const v of xt) s.push(`<line x1="${f(X(v))}" y1="${m.top}" x2="${f(X(v))}" y2="${m.top + ph}"/>`);
  for (const v of yt) s.push(`<line x1="${m.left}" y1="${f(Y(v))}" x2="${m.left + pw}" y2="${f(Y(v))}"/>`);
  s.push('</g>');
  s.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#444444" stroke-width="1"/>`);
  s.push('<g fill="#444444" text-anchor="middle">');
  for (const v of xt) s.push(`<text x="${f(X(v))}" y="${m.top + ph + 18}">${tickLabel(v)}</text>`);
  s.push('</g>');
  s.push('<g fill="#444444" text-anchor="end">');
  for (const v of yt) s.push(`<text x="${m.left - 8}" y="${f(Y(v) + 4)}">${tickLabel(v)}</text>`);
  s.push('</g>');
  s.push(`<text x="${m.left + pw / 2}" y="${H - 34}" text-anchor="middle" fill="#222222" font-size="13">mean KL divergence from ${escapeXml(pts.find((r) => r.reference)?.reference ?? 'the reference')} (nats/token, lower is better)</text>`);
  s.push(`<text transform="translate(20 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle" fill="#222222" font-size="13">decode speed, tg${c.tg} (tokens/s)</text>`);
  s.push('<g font-size="12">');
  // Labels: one line each, placed right/left and above/below the point, whichever overlaps no
  // earlier label (approximate text boxes of 6.5 px a character).
  const boxes: { x0: number; x1: number; y0: number; y1: number }[] = [];
  for (const r of pts) {
    const x = X(r.quality!.meanKl);
    const y = Y(r.moerun.tg.median);
    const l = llamaTg(r);
    if (l !== null) {
      s.push(`<line x1="${f(x)}" y1="${f(y)}" x2="${f(x)}" y2="${f(Y(l))}" stroke="#f28e2b" stroke-width="1" stroke-dasharray="3 3"/>`);
      s.push(`<circle cx="${f(x)}" cy="${f(Y(l))}" r="5" fill="#ffffff" stroke="#f28e2b" stroke-width="2"/>`);
    }
    s.push(`<circle cx="${f(x)}" cy="${f(y)}" r="6" fill="#4e79a7" stroke="#ffffff" stroke-width="1.5"/>`);
    const detail = `${mib(r.sizeBytes)} MiB, top-1 ${fmt(r.quality!.top1 * 100, 1)}%`;
    const width = 6.5 * (r.label.length + detail.length + 3);
    const candidates = [
      { anchor: 'start', dx: 10, dy: -9 }, { anchor: 'start', dx: 10, dy: 17 },
      { anchor: 'end', dx: -10, dy: -9 }, { anchor: 'end', dx: -10, dy: 17 },
    ].map((c) => {
      const x0 = c.anchor === 'start' ? x + c.dx : x + c.dx - width;
      return { ...c, box: { x0, x1: x0 + width, y0: y + c.dy - 12, y1: y + c.dy + 3 } };
    });
    const fits = (b: { x0: number; x1: number; y0: number; y1: number }): boolean =>
      b.x0 >= 2 && b.x1 <= W - 2 && !boxes.some((o) => b.x0 < o.x1 && o.x0 < b.x1 && b.y0 < o.y1 && o.y0 < b.y1);
    const pick = candidates.find((c) => fits(c.box)) ?? candidates.find((c) => c.box.x0 >= 2 && c.box.x1 <= W - 2) ?? candidates[0]!;
    boxes.push(pick.box);
    s.push(
      `<text x="${f(x + pick.dx)}" y="${f(y + pick.dy)}" text-anchor="${pick.anchor}" fill="#222222"><tspan font-weight="bold">${escapeXml(r.label)}</tspan>` +
        `<tspan fill="#666666"> · ${escapeXml(detail)}</tspan></text>`,
    );
  }
  s.push('</g>');
  // Legend
  const ly = H - 14;
  s.push(`<circle cx="${m.left + 6}" cy="${ly - 4}" r="6" fill="#4e79a7"/>`);
  s.push(`<text x="${m.left + 18}" y="${ly}" fill="#222222">moerun</text>`);
  if (pts.some((r) => llamaTg(r) !== null)) {
    s.push(`<circle cx="${m.left + 86}" cy="${ly - 4}" r="5" fill="#ffffff" stroke="#f28e2b" stroke-width="2"/>`);
    s.push(`<text x="${m.left + 98}" y="${ly}" fill="#222222">llama.cpp (same file, same threads)</text>`);
  }
  s.push('</svg>');
  return s.join('\n') + '\n';
}

/** An MoE model's routing: one popularity bar per layer, and the simulated hot-expert cache. */
function formatRouting(r: RoutingResult, text: string): string[] {
  const out = [`expert routing of ${r.label} over ${r.tokens} tokens of ${text} (per MoE layer: experts sorted by use, the busiest's share of selections)`];
  for (const l of r.layers) {
    const total = l.selections.reduce((a, b) => a + b, 0);
    const top = total > 0 ? Math.max(...l.selections) / total : 0;
    out.push(`  layer ${String(l.layer).padStart(3)} ${popularityBar(l.selections)} ${fmt(top * 100, 1)}%`);
  }
  if (r.cache) {
    const vram = r.cache.vramBytes >= 2 ** 30 ? `${fmt(r.cache.vramBytes / 2 ** 30, 1)} GiB` : `${fmt(r.cache.vramBytes / 2 ** 20, 0)} MiB`;
    out.push(`  with ${vram} of GPU memory: ${r.cache.deviceExperts} of ${r.cache.expertCount} experts resident; ` +
      `hot-expert cache hit rate ${fmt(r.cache.hitRate * 100, 1)}%, ${fmt(r.cache.loadsPerToken, 2)} expert loads per token (simulated on this text)`);
  }
  return out;
}
