/**
 * Typed clients of the four public APIs, generated from the services' OpenAPI documents
 * (`make web-client`). Every call carries the in-memory access token; a 401 triggers one silent
 * refresh (the httpOnly cookie) and one retry. `data()` turns a problem+json answer into an ApiError.
 */
import createClient, { type Middleware } from 'openapi-fetch';
import type { paths as AuthPaths } from './auth';
import type { paths as CatalogPaths } from './catalog';
import type { paths as BillingPaths } from './billing';
import type { paths as PlaybackPaths } from './playback';
import { ApiError, type Problem } from '../lib/problem';
import { session } from './session';

const pending = new Map<string, Request>();

const bearer: Middleware = {
  onRequest({ request, id }) {
    const token = session.accessToken;
    if (token) request.headers.set('Authorization', `Bearer ${token}`);
    if (token) pending.set(id, request.clone());
    return request;
  },
  async onResponse({ response, id }) {
    const original = pending.get(id);
    pending.delete(id);
    if (response.status !== 401 || !original) return response;
    if (!(await session.refresh())) return response;
    const retry = new Request(original);
    retry.headers.set('Authorization', `Bearer ${session.accessToken}`);
    return fetch(retry);
  },
  onError({ id }) {
    pending.delete(id);
  },
};

function client<Paths extends object>(service: string) {
  const api = createClient<Paths>({ baseUrl: `/api/${service}`, credentials: 'same-origin' });
  api.use(bearer);
  return api;
}

export const authApi = client<AuthPaths>('auth');
export const catalogApi = client<CatalogPaths>('catalog');
export const billingApi = client<BillingPaths>('billing');
export const playbackApi = client<PlaybackPaths>('playback');

/** The body of a successful answer, or an ApiError carrying the problem's `detail`. */
export async function data<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const { data: body, error, response } = await call;
  if (!response.ok) throw new ApiError(response.status, (error ?? {}) as Problem);
  return body as T;
}

/** A fresh Idempotency-Key for a POST that creates money or access. */
export function idempotencyKey(): string {
  return crypto.randomUUID();
}

export type { AuthPaths, CatalogPaths, BillingPaths, PlaybackPaths };
