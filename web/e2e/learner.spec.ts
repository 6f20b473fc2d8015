import { expect, test } from '@playwright/test';
import { DEMO, PAID_COURSE_TITLE, expectPlaying, mailedCode, shot, signIn, unique } from './helpers';

/**
 * The core path in a real browser: register, verify from the mail, buy through the provider's
 * page, watch (the video plays, the watermark is drawn), a third stream ends the oldest, an admin
 * refunds and the player refuses.
 */
test('a learner registers, buys, watches, and loses access after a refund', async ({ page, browser }) => {
  const email = `${unique('learner')}@example.com`;
  const password = 'Correct-Horse-Battery-9';

  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'Courses' })).toBeVisible();
  await shot(page, '01-catalog');
  await page.getByLabel('Search courses').fill('protected');
  await page.getByRole('button', { name: 'Search' }).click();
  await expect(page).toHaveURL(/q=protected/);
  const results = page.getByRole('list', { name: 'Courses' });
  await expect(results.getByRole('link', { name: PAID_COURSE_TITLE })).toBeVisible();
  await expect(results.getByRole('link', { name: 'HLS Basics (free)' })).toHaveCount(0);

  await page.getByRole('link', { name: 'Register' }).click();
  await page.getByLabel('Full name').fill('Browser Learner');
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill('short');
  await page.getByRole('button', { name: 'Register' }).click();
  await expect(page.getByLabel('Password')).toHaveJSProperty('validity.valid', false);
  await page.getByLabel('Password').fill(password);
  await shot(page, '02-register');
  await page.getByRole('button', { name: 'Register' }).click();

  await expect(page.getByRole('heading', { name: 'Verify your e-mail' })).toBeVisible();
  await page.getByLabel('Verification code').fill('0000');
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page.getByRole('alert')).not.toBeEmpty(); // the API's detail for a wrong code
  await page.getByLabel('Verification code').fill(await mailedCode(email, 'Confirm your email address'));
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page.getByRole('status')).toHaveText('Your e-mail address is verified.');

  await page.goto('/');
  await page.getByRole('link', { name: PAID_COURSE_TITLE }).click();
  await expect(page.getByRole('heading', { name: 'Curriculum' })).toBeVisible();
  await expect(page.getByLabel('Price')).toContainText('49');
  await shot(page, '03-course');
  await page.getByRole('button', { name: 'Buy this course' }).click();

  // The local provider's hosted page, then back to the app's success page.
  await expect(page.getByRole('heading', { name: 'Local test checkout' })).toBeVisible();
  await shot(page, '04-provider-checkout');
  await page.getByRole('button', { name: 'Pay (test mode)' }).click();
  await page.getByRole('link', { name: 'Continue' }).click();
  await expect(page.getByText('Payment confirmed')).toBeVisible();
  const orderId = new URL(page.url()).searchParams.get('order_id') as string;
  await shot(page, '05-checkout-success');

  await page.getByRole('link', { name: 'My learning' }).first().click();
  await expect(page.getByRole('link', { name: PAID_COURSE_TITLE })).toBeVisible();
  await shot(page, '06-my-learning');
  // The access token lives in memory only: a reload signs in again from the httpOnly refresh cookie.
  expect(await page.evaluate(() => document.cookie)).toBe('');
  await page.reload();
  await expect(page.getByRole('link', { name: PAID_COURSE_TITLE })).toBeVisible();
  await page.getByRole('link', { name: /Start|Resume/ }).click();
  await expect(page.getByTestId('watermark')).toBeVisible(); // the free preview (trailer) first
  await page.getByRole('navigation', { name: 'Lessons' }).getByRole('link', { name: 'Signed URLs in practice' }).click();
  await expect(page.getByRole('heading', { name: 'Signed URLs in practice' })).toBeVisible();

  await expectPlaying(page);
  const watermark = page.getByTestId('watermark');
  await expect(watermark).toBeVisible();
  await expect(watermark).toContainText(email);
  const opacity = await watermark.evaluate((el) => Number(getComputedStyle(el).opacity));
  expect(opacity).toBeGreaterThan(0);
  expect(opacity).toBeLessThan(1);
  await shot(page, '07-player');
  const playerUrl = page.url();

  // Two more streams on other "devices": the policy ends the least recently active one.
  const devices = [];
  const players = [page];
  for (let i = 0; i < 2; i++) {
    const device = await browser.newContext();
    const other = await device.newPage();
    await signIn(other, email, password);
    await other.goto(playerUrl);
    await expect(other.getByTestId('watermark')).toBeVisible();
    devices.push(device);
    players.push(other);
  }
  await expect
    .poll(async () => {
      for (const [index, player] of players.entries()) {
        const alert = player.getByRole('alert');
        if ((await alert.count()) && /ended/.test((await alert.textContent()) ?? '')) {
          await shot(player, '08-stream-ended');
          return index;
        }
      }
      return -1;
    }, { timeout: 60_000 })
    .toBeGreaterThanOrEqual(0);
  for (const device of devices) await device.close();

  await page.goto('/orders');
  await expect(page.getByRole('cell', { name: PAID_COURSE_TITLE })).toBeVisible();
  await shot(page, '09-orders');
  await page.goto('/account');
  await expect(page.getByRole('heading', { name: 'Active sessions' })).toBeVisible();
  await expect(page.getByText(/last used/).first()).toBeVisible();
  const download = page.waitForEvent('download');
  await page.getByRole('button', { name: 'Download my data' }).click();
  expect((await download).suggestedFilename()).toBe('triple-academy-export.zip');
  await shot(page, '10-account');

  // An admin refunds the order in the console; the learner's player is refused from then on.
  const adminContext = await browser.newContext();
  const admin = await adminContext.newPage();
  await signIn(admin, DEMO.admin.email, DEMO.admin.password);
  await admin.getByRole('link', { name: 'Admin' }).click();
  await admin.getByRole('tab', { name: 'Orders' }).click();
  await admin.getByLabel('Status').selectOption('paid');
  const order = admin.getByRole('listitem').filter({ hasText: orderId });
  await expect(order).toBeVisible();
  await shot(admin, '11-admin-orders');
  await order.getByLabel('Reason').fill('browser test refund');
  await order.getByRole('button', { name: 'Refund' }).click();
  await expect(admin.getByRole('status').filter({ hasText: `order ${orderId}) sent to the provider` })).toBeVisible();

  // The order's evidence trail: checkout to refund across the services, each step with its request id.
  await admin.getByRole('tab', { name: 'Evidence' }).click();
  await admin.getByLabel('Id', { exact: true }).fill(orderId);
  await admin.getByRole('button', { name: 'Show' }).click();
  await expect(admin.getByText('order.checkout')).toBeVisible();
  await expect(admin.getByText('enrollment.granted')).toBeVisible();
  await expect(admin.getByText('refund.requested')).toBeVisible();
  await shot(admin, '11b-admin-evidence');
  await adminContext.close();

  await expect
    .poll(
      async () => {
        await page.goto(playerUrl);
        return page.getByRole('alert').textContent({ timeout: 30_000 });
      },
      { timeout: 60_000 },
    )
    .toMatch(/enrol/i);
  await shot(page, '12-player-refused');

  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByRole('link', { name: 'Sign in' })).toBeVisible();
});

test('the catalog works on a phone-sized screen with the keyboard', async ({ browser }) => {
  const phone = await browser.newContext({ viewport: { width: 375, height: 740 } });
  const page = await phone.newPage();
  await page.goto('/');
  await page.keyboard.press('Tab');
  await expect(page.getByRole('link', { name: 'Skip to content' })).toBeFocused();
  await page.getByLabel('Search courses').focus();
  await page.keyboard.type('basics');
  await page.keyboard.press('Enter');
  await expect(page.getByRole('list', { name: 'Courses' }).getByRole('link')).toHaveText(['HLS Basics (free)']);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await shot(page, '13-phone-catalog');
  await page.goto('/courses/does-not-exist');
  await expect(page.getByRole('alert')).not.toBeEmpty();
  await phone.close();
});
