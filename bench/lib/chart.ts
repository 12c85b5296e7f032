/**
 * A small SVG bar chart: one panel per figure, one bar per side (the median), a whisker for the spread
 * (p25-p75) and the target as a dashed line. Plain SVG so GitHub renders it inline in the report.
 */
export interface Bar {
  readonly label: string;
  readonly median: number;
  readonly low: number;
  readonly high: number;
  readonly highlight?: boolean;
}

export interface Panel {
  readonly title: string;
  readonly unit: string;
  readonly bars: readonly Bar[];
  /** Drawn as a dashed line with this label, e.g. "target 0.75 x baseline". */
  readonly target?: { readonly value: number; readonly label: string };
}

const WIDTH = 760;
const LABEL_WIDTH = 170;
const BAR_HEIGHT = 22;
const GAP = 8;
const PANEL_TOP = 34;

export function barChartSvg(panels: readonly Panel[]): string {
  const parts: string[] = [];
  let y = 10;
  for (const panel of panels) {
    const height = PANEL_TOP + panel.bars.length * (BAR_HEIGHT + GAP) + 18;
    parts.push(drawPanel(panel, y));
    y += height + 14;
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y}" viewBox="0 0 ${WIDTH} ${y}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    ...parts,
    `</svg>`,
    "",
  ].join("\n");
}

function drawPanel(panel: Panel, top: number): string {
  const max = Math.max(...panel.bars.map((b) => b.high), panel.target?.value ?? 0) * 1.12 || 1;
  const plotWidth = WIDTH - LABEL_WIDTH - 20;
  const x = (value: number) => LABEL_WIDTH + (value / max) * plotWidth;
  const out: string[] = [
    `<text x="10" y="${top + 16}" font-size="14" font-weight="bold">${escapeXml(panel.title)} (${escapeXml(panel.unit)})</text>`,
  ];
  panel.bars.forEach((bar, i) => {
    const y = top + PANEL_TOP + i * (BAR_HEIGHT + GAP);
    const fill = bar.highlight ? "#2b7bb9" : "#9aa5b1";
    out.push(
      `<text x="${LABEL_WIDTH - 8}" y="${y + 15}" text-anchor="end">${escapeXml(bar.label)}</text>`,
      `<rect x="${LABEL_WIDTH}" y="${y}" width="${(x(bar.median) - LABEL_WIDTH).toFixed(1)}" height="${BAR_HEIGHT}" fill="${fill}"/>`,
      `<line x1="${x(bar.low).toFixed(1)}" x2="${x(bar.high).toFixed(1)}" y1="${y + BAR_HEIGHT / 2}" y2="${y + BAR_HEIGHT / 2}" stroke="#222" stroke-width="1.5"/>`,
      `<line x1="${x(bar.low).toFixed(1)}" x2="${x(bar.low).toFixed(1)}" y1="${y + 6}" y2="${y + BAR_HEIGHT - 6}" stroke="#222"/>`,
      `<line x1="${x(bar.high).toFixed(1)}" x2="${x(bar.high).toFixed(1)}" y1="${y + 6}" y2="${y + BAR_HEIGHT - 6}" stroke="#222"/>`,
      `<text x="${(x(bar.high) + 6).toFixed(1)}" y="${y + 15}">${formatValue(bar.median)}</text>`,
    );
  });
  if (panel.target) {
    const tx = x(panel.target.value).toFixed(1);
    const bottom = top + PANEL_TOP + panel.bars.length * (BAR_HEIGHT + GAP);
    out.push(
      `<line x1="${tx}" x2="${tx}" y1="${top + PANEL_TOP - 6}" y2="${bottom}" stroke="#c0392b" stroke-dasharray="5,4" stroke-width="1.5"/>`,
      `<text x="${tx}" y="${bottom + 12}" fill="#c0392b" text-anchor="middle">${escapeXml(panel.target.label)}</text>`,
    );
  }
  return out.join("\n");
}

function formatValue(value: number): string {
  return value >= 100 ? value.toFixed(0) : value.toFixed(1);
}

function escapeXml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c] ?? c);
}
