/**
 * Building blocks of the self-contained HTML reports (the perf report, src/perf/html-report.ts,
 * and the tune study report, src/tune/report.ts): one file to open in any browser or attach to a
 * CI run, with the CSS and one small script inline and every chart pre-rendered inline SVG.
 *
 * - escaping: `escapeHtml`, `htmlAttributes`, and numbers for SVG coordinates and `data-*`
 *   attributes (`svgCoordinate`, `dataNumber`);
 * - chart pieces: `svgChartOpen` (the `<svg data-chart>` element every chart starts with),
 *   `niceStep` for axis ticks, `shortenLabel`, `htmlFigure`, `htmlLegend`;
 * - the page: `reportStylesheet` (the base look, with the report's own rules after it),
 *   `reportScript` (sortable tables and the "rendered" mark) and `renderReportPage`, which puts
 *   them together under a Content Security Policy that forbids every network request and every
 *   script but the page's own (by hash), so even a name that slipped past escaping could not run.
 */
import { createHash } from 'node:crypto';

// ---- escaping and numbers ------------------------------------------------------------------------

const ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Text made safe for HTML (and SVG) element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c] as string);
}

/** A figure for a `data-*` attribute: the number as JSON writes it (`null` when null or not finite). */
export function dataNumber(x: number | null): string {
  return x !== null && Number.isFinite(x) ? String(x) : 'null';
}

/**
 * Attributes from a map, each as ` name="value"` (with its leading space): strings escaped,
 * numbers as `dataNumber` writes them. Names are the caller's own and are not escaped.
 */
export function htmlAttributes(map: Readonly<Record<string, string | number>>): string {
  return Object.entries(map)
    .map(([k, v]) => ` ${k}="${escapeHtml(typeof v === 'number' ? dataNumber(v) : v)}"`)
    .join('');
}

/** A coordinate for an SVG attribute: rounded to `decimals` decimals (default 2), never NaN (`0`). */
export function svgCoordinate(x: number, decimals = 2): string {
  const f = 10 ** decimals;
  return Number.isFinite(x) ? String(Math.round(x * f) / f) : '0';
}

/** A name shortened to at most `max` characters for a chart label, with `…` when cut. */
export function shortenLabel(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/**
 * An axis step: 1, 2 or 5 times a power of ten, at least `x`. A step that is not positive (or
 * NaN) is 1; an infinite one stays infinite.
 */
export function niceStep(x: number): number {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  const f = x / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

// ---- charts --------------------------------------------------------------------------------------

/** The width of every chart, in px (its `viewBox` too; the page scales it down on narrow screens). */
export const CHART_WIDTH = 760;

const CHART_FONT = 'font-family="system-ui, sans-serif" font-size="11"';

/** How `svgChartOpen` writes a chart's dimensions. */
export interface SvgChartOptions {
  /** The chart's width (default `CHART_WIDTH`). */
  readonly width?: number;
  /** Decimals of the height (default 2, as `svgCoordinate`). */
  readonly decimals?: number;
}

/**
 * The opening `<svg>` of a chart, with its `<title>`: `data-chart` names the kind of chart,
 * `label` is its accessible name and tooltip, and `data` adds attributes (as `htmlAttributes`).
 * The caller closes it with `</svg>`.
 */
export function svgChartOpen(
  chart: string,
  height: number,
  label: string,
  data: Readonly<Record<string, string | number>> = {},
  options: SvgChartOptions = {},
): string {
  const width = options.width ?? CHART_WIDTH;
  const h = svgCoordinate(height, options.decimals);
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" role="img" width="${width}" height="${h}" ` +
    `viewBox="0 0 ${width} ${h}"${htmlAttributes({ 'data-chart': chart, 'aria-label': label, ...data })} ${CHART_FONT}>` +
    `<title>${escapeHtml(label)}</title>`
  );
}

/** A chart in a `<figure>` with its caption (escaped). */
export function htmlFigure(svg: string, caption: string): string {
  return `<figure>${svg}<figcaption>${escapeHtml(caption)}</figcaption></figure>`;
}

/** A legend: one colour swatch and label (escaped) per item. Colours are the caller's own. */
export function htmlLegend(items: readonly { readonly label: string; readonly color: string }[]): string {
  return `<p class="legend">${items.map((i) => `<span><i style="background:${i.color}"></i>${escapeHtml(i.label)}</span>`).join('')}</p>`;
}

// ---- the page ------------------------------------------------------------------------------------

/** Where a report's look departs from the base stylesheet. */
export interface ReportStyleOptions {
  /** The margin of an `h2` (default `28px 0 8px`). */
  readonly headingMargin?: string;
  /** The margin of a `figure` (default `8px 0 16px`). */
  readonly figureMargin?: string;
  /** Whether `.bad` text is bold as well as red (default true). */
  readonly boldBad?: boolean;
  /** The report's own rules, after the base ones. */
  readonly rules?: string;
}

/**
 * The report stylesheet: page, headings, sections, figures, sortable tables (`th[data-dir]`
 * arrows, `td.num`), `.meta`, `.note`, `.bad`, `.ok` and `.legend`; then the report's own rules.
 */
export function reportStylesheet(options: ReportStyleOptions = {}): string {
  const headingMargin = options.headingMargin ?? '28px 0 8px';
  const figureMargin = options.figureMargin ?? '8px 0 16px';
  const bad = options.boldBad === false ? 'color: #c0392b;' : 'color: #c0392b; font-weight: 600;';
  return `
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 0; background: #f6f7f9; }
main { max-width: 1040px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 4px; } h2 { font-size: 17px; margin: ${headingMargin}; } h3 { font-size: 14px; margin: 16px 0 4px; }
.meta { color: #555; margin: 0 0 12px; }
section { background: #fff; border: 1px solid #e1e4e8; border-radius: 6px; padding: 8px 16px 16px; margin: 16px 0; }
figure { margin: ${figureMargin}; overflow-x: auto; } svg { max-width: 100%; height: auto; } figcaption { color: #555; font-size: 12px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin: 8px 0; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eceef1; vertical-align: top; }
th { background: #f0f2f5; cursor: pointer; user-select: none; white-space: nowrap; }
th[data-dir="asc"]::after { content: " ▲"; } th[data-dir="desc"]::after { content: " ▼"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.bad { ${bad} } .ok { color: #1e8449; }
.legend span { display: inline-block; margin-right: 14px; font-size: 12px; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; vertical-align: -1px; }
.note { color: #555; font-size: 13px; }
${options.rules ?? ''}`;
}

/** One count the page script writes into `#rendered`: how many elements match, and what they are. */
export interface RenderedCount {
  /** A CSS selector, e.g. `svg[data-chart]`. */
  readonly selector: string;
  /** What they are, after the number: `charts`. */
  readonly label: string;
}

/**
 * The page's only script: every `table.sortable` sorts by a column when its header is clicked
 * (by the cells' `data-sort` numbers when they have them, else by text); then it writes the
 * `counts` into `#rendered` (`4 charts, 120 bars`) and marks the page rendered
 * (`<html data-ready="true">`), for a test that renders it in a browser.
 */
export function reportScript(counts: readonly RenderedCount[]): string {
  // JSON in a script: `<` escaped so that no selector can close the element.
  const list = JSON.stringify(counts.map((c) => [c.selector, c.label])).replace(/</g, '\\u003c');
  return `(function () {
  var doc = document;
  doc.querySelectorAll('table.sortable').forEach(function (table) {
    table.querySelectorAll('thead th').forEach(function (th, col) {
      th.addEventListener('click', function () {
        var dir = th.getAttribute('data-dir') === 'asc' ? 'desc' : 'asc';
        table.querySelectorAll('thead th').forEach(function (h) { h.removeAttribute('data-dir'); });
        th.setAttribute('data-dir', dir);
        var body = table.tBodies[0];
        var key = function (row) {
          var cell = row.cells[col];
          if (!cell) return '';
          var v = cell.getAttribute('data-sort');
          return v !== null && v !== 'null' ? Number(v) : cell.textContent;
        };
        Array.prototype.slice.call(body.rows)
          .sort(function (a, b) {
            var x = key(a), y = key(b);
            var c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
            return dir === 'asc' ? c : -c;
          })
          .forEach(function (row) { body.appendChild(row); });
      });
    });
  });
  var out = doc.getElementById('rendered');
  if (out) {
    out.textContent = ${list}.map(function (c) {
      return doc.querySelectorAll(c[0]).length + ' ' + c[1];
    }).join(', ');
  }
  doc.documentElement.setAttribute('data-ready', 'true');
})();`;
}

/** A report page: what `renderReportPage` puts together. */
export interface ReportPage {
  /** The page's title and heading (escaped). */
  readonly title: string;
  /** The `generator` meta (`mabeam bench`). */
  readonly generator: string;
  /** When the report was made, as shown (escaped). */
  readonly generatedAt: string;
  /** The stylesheet (`reportStylesheet`). */
  readonly style: string;
  /** The script (`reportScript`); the only one the page's policy lets run. */
  readonly script: string;
  /** The sections, HTML, in order. */
  readonly body: readonly string[];
}

/**
 * The whole page: head (charset, Content Security Policy, viewport, generator, title, style),
 * the title as a heading with when the report was made and the `#rendered` mark, the body, and
 * the script. The policy allows no network request at all, inline styles, `data:` images and only
 * this page's own script (by its SHA-256).
 */
export function renderReportPage(page: ReportPage): string {
  const hash = createHash('sha256').update(page.script).digest('base64');
  const csp = `default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-${hash}'`;
  return [
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="${escapeHtml(csp)}">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<meta name="generator" content="${escapeHtml(page.generator)}">`,
    `<title>${escapeHtml(page.title)}</title><style>${page.style}</style></head>`,
    '<body><main>',
    `<h1>${escapeHtml(page.title)}</h1>`,
    `<p class="meta">Generated ${escapeHtml(page.generatedAt)} by mabeam. <span id="rendered"></span></p>`,
    ...page.body,
    '</main>',
    `<script>${page.script}</script>`,
    '</body></html>',
    '',
  ].join('\n');
}
