/** A small hand-written SVG of line charts for bench/growth.ts: one panel per figure, linear axes. */

export interface Series { readonly name: string; readonly points: { x: number; p50Ms: number; peakMb: number }[] }
export interface Panel { readonly title: string; readonly series: readonly Series[]; readonly figure: 'p50Ms' | 'peakMb' }

const WIDTH = 420;
const HEIGHT = 260;
const MARGIN = { left: 60, right: 20, top: 30, bottom: 40 };
const COLOURS = ['#1f77b4', '#d62728', '#2ca02c'];

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function panel(spec: Panel, offsetX: number, offsetY: number): string {
  const points = spec.series.flatMap((series) => series.points);
  const maxX = Math.max(1, ...points.map((point) => point.x));
  const maxY = Math.max(1, ...points.map((point) => point[spec.figure])) * 1.1;
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const px = (x: number) => offsetX + MARGIN.left + (x / maxX) * plotW;
  const py = (y: number) => offsetY + MARGIN.top + plotH - (y / maxY) * plotH;
  const parts = [
    `<text x="${offsetX + WIDTH / 2}" y="${offsetY + 18}" text-anchor="middle" font-size="13">${escape(spec.title)}</text>`,
    `<line x1="${px(0)}" y1="${py(0)}" x2="${px(maxX)}" y2="${py(0)}" stroke="#333"/>`,
    `<line x1="${px(0)}" y1="${py(0)}" x2="${px(0)}" y2="${py(maxY)}" stroke="#333"/>`,
  ];
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    parts.push(`<text x="${px(0) - 6}" y="${py(maxY * tick) + 4}" text-anchor="end" font-size="10">${Math.round(maxY * tick)}</text>`);
  }
  for (const x of [...new Set(points.map((point) => point.x))]) {
    parts.push(`<text x="${px(x).toFixed(1)}" y="${py(0) + 14}" text-anchor="middle" font-size="10">${x.toLocaleString('en-US')}</text>`);
  }
  spec.series.forEach((series, i) => {
    const colour = COLOURS[i % COLOURS.length]!;
    const line = series.points.map((point) => `${px(point.x).toFixed(1)},${py(point[spec.figure]).toFixed(1)}`).join(' ');
    parts.push(`<polyline points="${line}" fill="none" stroke="${colour}" stroke-width="2" stroke-dasharray="${i === 0 ? '' : '5,3'}"/>`);
    for (const point of series.points) parts.push(`<circle cx="${px(point.x).toFixed(1)}" cy="${py(point[spec.figure]).toFixed(1)}" r="3" fill="${colour}"/>`);
    parts.push(`<text x="${px(maxX) - 4}" y="${offsetY + MARGIN.top + 12 + i * 14}" text-anchor="end" font-size="11" fill="${colour}">${escape(series.name)}</text>`);
  });
  return parts.join('\n');
}

/** Two panels a row; the caption names the run. */
export function growthSvg(panels: readonly Panel[], caption: string): string {
  const rows = Math.ceil(panels.length / 2);
  const height = rows * HEIGHT + 30;
  const body = panels.map((spec, i) => panel(spec, (i % 2) * WIDTH, Math.floor(i / 2) * HEIGHT)).join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * WIDTH}" height="${height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
${body}
<text x="${WIDTH}" y="${height - 10}" text-anchor="middle" font-size="11" fill="#555">${escape(caption)}</text>
</svg>
`;
}
