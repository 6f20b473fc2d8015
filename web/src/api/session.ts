/**
 * The signed-in session. The access token lives only in memory (never in storage, so a script
 * injected later cannot read an old one); the refresh token is auth's httpOnly, SameSite=Strict
 * cookie scoped to /api/auth/refresh, so a reload signs in again with one POST. The token is
 * refreshed silently before it expires.
 */
import { jwtClaims, refreshDelayMs } from '../lib/jwt';
import { ApiError, type Problem } from '../lib/problem';

export interface User {
  id: string;
  email: string;
  full_name: string;
  roles: string[];
  email_verified: boolean;
  is_active: boolean;
  created_at: string;
}

interface TokenPair {
  access_token: string;
  expires_in: number;
}

type Listener = () => void;

async function post(path: string, body?: unknown): Promise<Response> {
  return fetch(`/api/auth${path}`, {
    method: 'POST',
    credentials: 'same-origin',
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function problemOf(response: Response): Promise<ApiError> {
  let problem: Problem = {};
  try {
    problem = (await response.json()) as Problem;
  } catch {
    /* an empty or non-JSON error body: the status says enough */
  }
  return new ApiError(response.status, problem);
}

export class Session {
  accessToken: string | null = null;
  user: User | null = null;
  /** True once the start-up refresh attempt finished (signed in or not); `whenReady` resolves then. */
  ready = false;
  private markReady: () => void = () => undefined;
  readonly whenReady = new Promise<void>((resolve) => (this.markReady = resolve));
  private timer: ReturnType<typeof setTimeout> | undefined;
  private refreshing: Promise<boolean> | null = null;
  private listeners = new Set<Listener>();

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  hasRole(role: string): boolean {
    return this.user?.roles.includes(role) ?? false;
  }

  async login(email: string, password: string): Promise<User> {
    const response = await post('/login', { email, password, refresh_transport: 'cookie' });
    if (!response.ok) throw await problemOf(response);
    await this.accept((await response.json()) as TokenPair);
    return this.user as User;
  }

  /** Start-up: a refresh cookie from an earlier visit signs the user in again. */
  async restore(): Promise<void> {
    await this.refresh();
    this.ready = true;
    this.markReady();
    this.emit();
  }

  /** One refresh at a time (concurrent 401s share it); false when the cookie is gone or refused. */
  refresh(): Promise<boolean> {
    this.refreshing ??= (async () => {
      try {
        const response = await post('/refresh');
        if (!response.ok) {
          this.clear();
          return false;
        }
        await this.accept((await response.json()) as TokenPair);
        return true;
      } catch {
        return false;
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  async reloadUser(): Promise<void> {
    if (!this.accessToken) return;
    const response = await fetch('/api/auth/me', { headers: { Authorization: `Bearer ${this.accessToken}` } });
    if (!response.ok) throw await problemOf(response);
    this.user = (await response.json()) as User;
    this.emit();
  }

  /** This browser's session ends (the cookie's refresh family is revoked and the cookie cleared). */
  async logout(): Promise<void> {
    try {
      await post('/refresh/logout');
    } finally {
      this.clear();
    }
  }

  /** Forget everything locally (after sign-out everywhere or account deletion). */
  clear(): void {
    clearTimeout(this.timer);
    this.accessToken = null;
    this.user = null;
    this.emit();
  }

  private async accept(pair: TokenPair): Promise<void> {
    this.accessToken = pair.access_token;
    const claims = jwtClaims(pair.access_token);
    const lifetime = typeof claims?.exp === 'number' ? claims.exp - Date.now() / 1000 : pair.expires_in;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.refresh(), refreshDelayMs(Math.min(lifetime, pair.expires_in)));
    await this.reloadUser();
  }

  private emit(): void {
    for (const listener of this.listeners) listener();
  }
}

export const session = new Session();
