/**
 * URLs the API hands out (manifest, upload) name the public base URL; when they point at this
 * platform's own /api or /media paths, the app calls them on its own origin, so the CSP's
 * `connect-src 'self'` holds behind any host name. Other URLs (an S3 presigned PUT) stay as they are.
 */
export function sameOriginUrl(url: string, here: string = window.location.href): string {
  const parsed = new URL(url, here);
  if (/^\/(api|media)\//.test(parsed.pathname)) return `${parsed.pathname}${parsed.search}`;
  return parsed.toString();
}

/** Move one item of a list up (-1) or down (+1); the list is unchanged at its ends. */
export function moved<T>(items: T[], index: number, step: -1 | 1): T[] {
  const target = index + step;
  if (index < 0 || index >= items.length || target < 0 || target >= items.length) return items;
  const copy = items.slice();
  [copy[index], copy[target]] = [copy[target], copy[index]];
  return copy;
}
