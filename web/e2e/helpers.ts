import { readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect, type Page } from '@playwright/test';

export const DEMO = {
  admin: { email: 'admin@triple.academy', password: 'Admin-Demo-2026!' },
  instructor: { email: 'instructor@triple.academy', password: 'Instructor-Demo-2026!' },
};
export const PAID_COURSE_TITLE = 'Protected Video Streaming 101';

const SHOTS = process.env.SCREENSHOT_DIR ?? join(process.cwd(), '..', 'var', 'web-screenshots');

/** A full-page screenshot kept as a test artifact (and looked at by a person now and then). */
export async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${process.env.SCREENSHOT_PREFIX ?? ''}${name}.png`), fullPage: true });
}

export function unique(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`;
}

/** The code of the last mail of `subject` to `to`, read from the platform's log (embedded: the mailbox). */
export async function mailedCode(to: string, subject: string): Promise<string> {
  const log = process.env.MAIL_LOG;
  if (!log) throw new Error('MAIL_LOG is not set');
  let code: string | undefined;
  await expect
    .poll(
      () => {
        const text = readFileSync(log, 'utf8');
        const mails = text.split(`To: ${to}`).slice(1).filter((m) => m.includes(`Subject: ${subject}`));
        code = mails.at(-1)?.match(/enter this code: ([0-9a-f]+)/)?.[1];
        return code;
      },
      { timeout: 30_000 },
    )
    .toBeTruthy();
  return code as string;
}

export async function signIn(page: Page, email: string, password: string): Promise<void> {
  await page.goto('/login');
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('button', { name: 'Sign out' })).toBeVisible();
}

/** Seconds of video played, read from the element itself. */
export async function currentTime(page: Page): Promise<number> {
  return page.getByTestId('video').evaluate((v) => (v as HTMLVideoElement).currentTime);
}

export async function expectPlaying(page: Page): Promise<void> {
  await expect.poll(() => currentTime(page), { timeout: 60_000 }).toBeGreaterThan(0.5);
  const before = await currentTime(page);
  await expect.poll(() => currentTime(page), { timeout: 30_000 }).toBeGreaterThan(before);
}
