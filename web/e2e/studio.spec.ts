import { expect, test } from '@playwright/test';
import { DEMO, shot, signIn, unique } from './helpers';

/** An instructor builds a course around an uploaded video; an admin reviews and publishes it. */
test('an instructor uploads a video and an admin publishes the course', async ({ page, browser }) => {
  const video = process.env.VIDEO_FILE;
  test.skip(!video, 'VIDEO_FILE (a small generated mp4) is not set');
  const title = `Browser course ${unique('c')}`;

  await signIn(page, DEMO.instructor.email, DEMO.instructor.password);
  await page.getByRole('link', { name: 'Studio' }).click();
  await page.getByLabel('Title').fill(title);
  await page.getByLabel('Price (EUR, 0 for free)').fill('19.50');
  await page.getByRole('button', { name: 'Create course' }).click();
  await expect(page.getByRole('heading', { name: `Studio: ${title}` })).toBeVisible();
  await expect(page.getByTestId('course-status')).toHaveText('draft');

  await page.getByLabel('New section title').fill('Getting started');
  await page.getByRole('button', { name: 'Add section' }).click();
  await expect(page.getByRole('heading', { name: /Getting started/ })).toBeVisible();

  await page.getByLabel('Video file').setInputFiles(video as string);
  await page.getByRole('button', { name: 'Upload' }).click();
  await expect(page.getByRole('progressbar', { name: 'Upload' })).toBeVisible();
  await expect(page.getByText('Transcoding: ready')).toBeVisible({ timeout: 120_000 });
  await page.getByLabel('Lesson title').fill('First steps');
  await page.getByLabel('Free preview').check();
  await page.getByRole('button', { name: 'Add lesson' }).click();
  await expect(page.getByText(/First steps\s*video, preview, video attached/)).toBeVisible();
  await shot(page, '14-studio-course');

  await page.getByRole('button', { name: 'Submit for review' }).click();
  await expect(page.getByTestId('course-status')).toHaveText('in_review');

  const adminContext = await browser.newContext();
  const admin = await adminContext.newPage();
  await signIn(admin, DEMO.admin.email, DEMO.admin.password);
  await admin.getByRole('link', { name: 'Admin' }).click();
  await expect(admin.getByRole('link', { name: title })).toBeVisible();
  await shot(admin, '15-admin-review');
  await admin.getByRole('button', { name: `Publish ${title}` }).click();
  await expect(admin.getByText(`Published ${title}.`)).toBeVisible();
  await adminContext.close();

  // Anyone finds it in the catalog now, and its free preview plays for a signed-in visitor.
  const visitorContext = await browser.newContext();
  const visitor = await visitorContext.newPage();
  await visitor.goto('/');
  await visitor.getByLabel('Search courses').fill(title);
  await visitor.getByRole('button', { name: 'Search' }).click();
  await expect
    .poll(async () => {
      await visitor.reload();
      return visitor.getByRole('link', { name: title }).count();
    })
    .toBe(1);
  await visitor.getByRole('link', { name: title }).click();
  await expect(visitor.getByRole('link', { name: 'Watch First steps' })).toBeVisible();
  await shot(visitor, '16-published-course');
  await visitorContext.close();
});
