/**
 * Where the per-viewer watermark goes next: a different cell of a grid over the video each time,
 * never the same one twice in a row, so one fixed mask cannot crop it out of a recording.
 * Positions are percentages of the player box; `random` is injectable for tests.
 */
export interface Spot {
  left: number;
  top: number;
}

export const WATERMARK_INTERVAL_MS = 7000;
const COLUMNS = [2, 18, 34];
const ROWS = [6, 30, 54, 78];

export function nextSpot(previous: Spot | null, random: () => number = Math.random): Spot {
  const cells = COLUMNS.flatMap((left) => ROWS.map((top) => ({ left, top })));
  const choices = previous ? cells.filter((c) => c.left !== previous.left || c.top !== previous.top) : cells;
  const index = Math.min(choices.length - 1, Math.floor(random() * choices.length));
  return choices[index];
}

/** The text drawn: the code from the playback token plus the viewer's e-mail when known. */
export function watermarkText(code: string, email?: string | null): string {
  return email ? `${email} · ${code}` : code;
}
