/** The claims of a JWT, read without verifying (the server verifies; the app only needs `exp`). */
export function jwtClaims(token: string): Record<string, unknown> | null {
  const part = token.split('.')[1];
  if (!part) return null;
  try {
    const base64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=');
    const json = decodeURIComponent(
      Array.from(atob(base64), (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).join(''),
    );
    const claims: unknown = JSON.parse(json);
    return claims && typeof claims === 'object' ? (claims as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/**
 * When to refresh silently: a minute before expiry, or at 80 % of a shorter lifetime, never in
 * less than 5 s (a clock skew cannot make the app loop on refreshes).
 */
export function refreshDelayMs(expiresInSeconds: number): number {
  const lead = Math.min(60, expiresInSeconds * 0.2);
  return Math.max(5, expiresInSeconds - lead) * 1000;
}
