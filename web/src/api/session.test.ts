import { afterEach, describe, expect, it, vi } from 'vitest';
import { Session } from './session';

const b64 = (o: object) => btoa(JSON.stringify(o)).replace(/=+$/, '');
const jwt = (exp: number) => `${b64({ alg: 'EdDSA' })}.${b64({ sub: 'u1', exp })}.sig`;
const user = { id: 'u1', email: 'a@b.c', full_name: 'A', roles: ['student'], email_verified: true, is_active: true, created_at: '' };

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}

afterEach(() => {
  vi.unstubAllGlobals();
  vi.useRealTimers();
});

describe('Session', () => {
  it('signs in with the refresh token in the cookie, keeps the access token in memory only', async () => {
    const calls: { url: string; init?: RequestInit }[] = [];
    vi.stubGlobal('fetch', async (url: string, init?: RequestInit) => {
      calls.push({ url, init });
      return url.endsWith('/login') ? json(200, { access_token: jwt(Date.now() / 1000 + 900), expires_in: 900 }) : json(200, user);
    });
    const s = new Session();
    await s.login('a@b.c', 'pw');
    expect(JSON.parse(String(calls[0].init?.body))).toEqual({ email: 'a@b.c', password: 'pw', refresh_transport: 'cookie' });
    expect(calls[0].init?.credentials).toBe('same-origin');
    expect(s.user?.email).toBe('a@b.c');
    expect(s.accessToken).toMatch(/\.sig$/);
    expect(localStorage.length + sessionStorage.length).toBe(0);
    s.clear();
  });

  it('refreshes silently before the access token expires', async () => {
    vi.useFakeTimers();
    let refreshes = 0;
    vi.stubGlobal('fetch', async (url: string) => {
      if (url.endsWith('/refresh')) refreshes += 1;
      if (url.endsWith('/me')) return json(200, user);
      return json(200, { access_token: jwt(Date.now() / 1000 + 100), expires_in: 100 });
    });
    const s = new Session();
    await s.login('a@b.c', 'pw');
    await vi.advanceTimersByTimeAsync(79_000);
    expect(refreshes).toBe(0);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(refreshes).toBe(1);
    s.clear();
  });

  it('shares one refresh between concurrent callers and signs out when it is refused', async () => {
    let refreshes = 0;
    vi.stubGlobal('fetch', async () => {
      refreshes += 1;
      return json(401, { detail: 'refresh token is invalid, expired or already used', code: 'invalid_grant' });
    });
    const s = new Session();
    s.accessToken = 'stale';
    const results = await Promise.all([s.refresh(), s.refresh(), s.refresh()]);
    expect(results).toEqual([false, false, false]);
    expect(refreshes).toBe(1);
    expect(s.accessToken).toBeNull();
  });

  it('turns a refused sign-in into the problem detail', async () => {
    vi.stubGlobal('fetch', async () => json(401, { title: 'Unauthorized', detail: 'wrong e-mail or password', status: 401 }));
    await expect(new Session().login('a@b.c', 'bad')).rejects.toThrow('wrong e-mail or password');
  });
});
