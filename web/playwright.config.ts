import { defineConfig } from '@playwright/test';

// Driven by tests/e2e/test_web_browser.py, which starts the platform and sets BASE_URL, MAIL_LOG,
// VIDEO_FILE and SCREENSHOT_DIR. Debian's Chromium: Playwright's own browser downloads are not used.
export default defineConfig({
  testDir: 'e2e',
  timeout: 180_000,
  expect: { timeout: 30_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [['list']],
  outputDir: process.env.PLAYWRIGHT_OUTPUT_DIR ?? 'test-results',
  use: {
    baseURL: process.env.BASE_URL ?? 'http://127.0.0.1:8000',
    headless: true,
    viewport: { width: 1200, height: 800 },
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: ['--autoplay-policy=no-user-gesture-required', '--no-sandbox'],
    },
    trace: 'off',
    screenshot: 'only-on-failure',
  },
});
