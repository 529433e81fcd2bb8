/**
 * The HTML report building blocks: escaping, numbers for attributes, axis steps, the chart
 * element, the stylesheet's options, the page script (run against a small fake DOM) and the page
 * with its Content Security Policy. The two reports that use them are rendered in Chromium by
 * test/perf/html-report.test.ts and test/tune/report.test.ts.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as html from '../../src/foundation/html.js';

const EVIL = `<script>alert('x')</script>"&`;

describe('escaping and numbers', () => {
  it('escapes the five special characters and leaves no raw one', () => {
    expect(html.escapeHtml(`<a href="x">'&'</a>`)).toBe(
      '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;',
    );
    fc.assert(
      fc.property(fc.string(), (s) => {
        const out = html.escapeHtml(s);
        expect(out).not.toMatch(/[<>"']/);
        expect(out.replace(/&(amp|lt|gt|quot|#39);/g, '')).not.toContain('&');
      }),
    );
  });

  it('writes data numbers as JSON does, null when not finite', () => {
    expect(html.dataNumber(1.5)).toBe('1.5');
    expect(html.dataNumber(-0.001)).toBe('-0.001');
    expect(html.dataNumber(Number.NaN)).toBe('null');
    expect(html.dataNumber(Number.POSITIVE_INFINITY)).toBe('null');
    expect(html.dataNumber(null)).toBe('null');
  });

  it('writes attributes with strings escaped and numbers as data numbers', () => {
    expect(html.htmlAttributes({ 'data-name': EVIL, 'data-value': 2.5, 'data-bad': Number.NaN })).toBe(
      ` data-name="${html.escapeHtml(EVIL)}" data-value="2.5" data-bad="null"`,
    );
    expect(html.htmlAttributes({})).toBe('');
  });

  it('rounds coordinates to the decimals asked, and NaN to 0', () => {
    expect(html.svgCoordinate(12.3456)).toBe('12.35');
    expect(html.svgCoordinate(12.3456, 1)).toBe('12.3');
    expect(html.svgCoordinate(12.3456, 0)).toBe('12');
    expect(html.svgCoordinate(Number.NaN)).toBe('0');
    expect(html.svgCoordinate(Number.NEGATIVE_INFINITY, 1)).toBe('0');
  });

  it('shortens a label to max characters with an ellipsis', () => {
    expect(html.shortenLabel('abcdef', 6)).toBe('abcdef');
    expect(html.shortenLabel('abcdefg', 6)).toBe('abcde…');
    expect(html.shortenLabel('abcdefg', 6)).toHaveLength(6);
  });
});

describe('niceStep', () => {
  it('is 1, 2 or 5 times a power of ten, at least x and under 2.5 x', () => {
    fc.assert(
      fc.property(fc.double({ min: 1e-12, max: 1e12, noNaN: true }), (x) => {
        const step = html.niceStep(x);
        expect(step).toBeGreaterThanOrEqual(x * (1 - 1e-12));
        expect(step).toBeLessThanOrEqual(2.5 * x);
        const mantissa = step / 10 ** Math.floor(Math.log10(step) + 1e-9);
        expect([1, 2, 5, 10].some((m) => Math.abs(mantissa - m) < 1e-9)).toBe(true);
      }),
    );
    expect([0.3, 1, 1.5, 3, 7, 25].map(html.niceStep)).toEqual([0.5, 1, 2, 5, 10, 50]);
  });

  it('is 1 for a step that is not positive, and stays infinite for an infinite one', () => {
    expect(html.niceStep(0)).toBe(1);
    expect(html.niceStep(-3)).toBe(1);
    expect(html.niceStep(Number.NaN)).toBe(1);
    expect(html.niceStep(Number.POSITIVE_INFINITY)).toBe(Number.POSITIVE_INFINITY);
  });
});

describe('chart pieces', () => {
  it('opens a chart with its kind, escaped label and data attributes', () => {
    const svg = html.svgChartOpen('history', 120.456, EVIL, { 'data-scale': 'log', 'data-points': 3 });
    expect(svg).toBe(
      `<svg xmlns="http://www.w3.org/2000/svg" role="img" width="${html.CHART_WIDTH}" height="120.46" ` +
        `viewBox="0 0 ${html.CHART_WIDTH} 120.46" data-chart="history" aria-label="${html.escapeHtml(EVIL)}" ` +
        `data-scale="log" data-points="3" font-family="system-ui, sans-serif" font-size="11">` +
        `<title>${html.escapeHtml(EVIL)}</title>`,
    );
    expect(html.svgChartOpen('x', 120.456, 'l', {}, { width: 300, decimals: 1 })).toContain(
      'width="300" height="120.5" viewBox="0 0 300 120.5"',
    );
  });

  it('escapes figure captions and legend labels', () => {
    expect(html.htmlFigure('<svg></svg>', EVIL)).toBe(
      `<figure><svg></svg><figcaption>${html.escapeHtml(EVIL)}</figcaption></figure>`,
    );
    expect(html.htmlLegend([{ label: EVIL, color: '#123456' }])).toBe(
      `<p class="legend"><span><i style="background:#123456"></i>${html.escapeHtml(EVIL)}</span></p>`,
    );
  });
});

describe('reportStylesheet', () => {
  it('has the base rules, bold red .bad and the default margins', () => {
    const css = html.reportStylesheet();
    expect(css).toContain('h2 { font-size: 17px; margin: 28px 0 8px; }');
    expect(css).toContain('figure { margin: 8px 0 16px; overflow-x: auto; }');
    expect(css).toContain('.bad { color: #c0392b; font-weight: 600; }');
    expect(css).toContain('th[data-dir="asc"]::after');
  });

  it('takes the report’s margins, plain .bad and its own rules last', () => {
    const css = html.reportStylesheet({
      headingMargin: '12px 0 8px',
      figureMargin: '8px 0 8px',
      boldBad: false,
      rules: 'tr.best { background: #eef5fc; }\n',
    });
    expect(css).toContain('h2 { font-size: 17px; margin: 12px 0 8px; }');
    expect(css).toContain('figure { margin: 8px 0 8px;');
    expect(css).toContain('.bad { color: #c0392b; }');
    expect(css.endsWith('.note { color: #555; font-size: 13px; }\ntr.best { background: #eef5fc; }\n')).toBe(
      true,
    );
  });
});

/** A fake DOM just big enough for the page script: counts per selector, no tables. */
function runScript(script: string, counts: Readonly<Record<string, number>>) {
  const rendered = { textContent: '' };
  const attributes: Record<string, string> = {};
  const doc = {
    querySelectorAll: (selector: string) =>
      Object.assign(new Array(counts[selector] ?? 0).fill({}), { forEach: () => undefined }),
    getElementById: (id: string) => (id === 'rendered' ? rendered : null),
    documentElement: {
      setAttribute: (k: string, v: string) => {
        attributes[k] = v;
      },
    },
  };
  new Function('document', script)(doc);
  return { rendered: rendered.textContent, attributes };
}

describe('reportScript', () => {
  it('writes the counts into #rendered and marks the page ready', () => {
    const script = html.reportScript([
      { selector: 'svg[data-chart]', label: 'charts' },
      { selector: 'table[data-table="trials"] tbody tr', label: 'rows' },
    ]);
    const out = runScript(script, { 'svg[data-chart]': 4, 'table[data-table="trials"] tbody tr': 7 });
    expect(out.rendered).toBe('4 charts, 7 rows');
    expect(out.attributes).toEqual({ 'data-ready': 'true' });
  });

  it('cannot be closed early by a selector', () => {
    const script = html.reportScript([{ selector: '</script><b>', label: 'x' }]);
    expect(script).not.toContain('</script');
    expect(runScript(script, { '</script><b>': 2 }).rendered).toBe('2 x');
  });
});

describe('renderReportPage', () => {
  it('puts the page together under a policy that allows only its own script', () => {
    const script = html.reportScript([{ selector: 'svg[data-chart]', label: 'charts' }]);
    const page = html.renderReportPage({
      title: `report ${EVIL}`,
      generator: 'mabeam test',
      generatedAt: '2025-01-01T00:00:00.000Z',
      style: html.reportStylesheet(),
      script,
      body: ['<section>one</section>', '<section>two</section>'],
    });
    const hash = createHash('sha256').update(script).digest('base64');
    expect(page.startsWith('<!DOCTYPE html>\n<html lang="en">')).toBe(true);
    expect(page).toContain(
      `content="${html.escapeHtml(`default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-${hash}'`)}"`,
    );
    expect(page).toContain('<meta name="generator" content="mabeam test">');
    expect(page).toContain(`<title>report ${html.escapeHtml(EVIL)}</title>`);
    expect(page).toContain(`<h1>report ${html.escapeHtml(EVIL)}</h1>`);
    expect(page).toContain('Generated 2025-01-01T00:00:00.000Z by mabeam. <span id="rendered"></span>');
    expect(page).toContain('<section>one</section>\n<section>two</section>');
    expect(page).toContain(`<script>${script}</script>`);
    expect(page.match(/<script>/g)).toHaveLength(1);
    expect(page).not.toContain(EVIL);
  });
});
