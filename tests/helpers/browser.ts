// A real browser for the console's tests: Debian's Chromium driven by playwright-core, with fake
// camera and microphone, against a complete test app served on a real port (wall clock, so calls
// and holds end on time). Without /usr/bin/chromium the browser tests are skipped (.ci/run
// installs it).
// deno-lint-ignore no-import-prefix
import { type Browser, type BrowserContext, chromium, type Page } from "npm:playwright-core@1.65.1";
import { createTestApp, type TestAppOptions } from "./app.ts";
import { freePort } from "./server.ts";

/** Debian's Chromium; CHROMIUM_PATH names another Chromium-based browser (a CI image's Chrome). */
export const CHROMIUM = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";
export const haveChromium = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();

export type { Browser, BrowserContext, Page };

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--use-fake-ui-for-media-stream",
      "--use-fake-device-for-media-stream",
      "--autoplay-policy=no-user-gesture-required",
    ],
  });
}

/** The test app on a real port, its PUBLIC_URL the address the browser uses. */
export async function servedConsole(options: TestAppOptions = {}) {
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  const t0 = await createTestApp({
    ...options,
    realClock: true,
    env: { PUBLIC_URL: base, ...options.env },
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, t0.app.fetch);
  return {
    ...t0,
    base,
    async [Symbol.asyncDispose]() {
      await t0.deps.hub.close();
      await server.shutdown();
      await t0[Symbol.asyncDispose]();
    },
  };
}

/**
 * A new browser context (its own cookies: one person) whose page records every console error and
 * uncaught exception, so a test can assert there were none.
 */
export async function person(browser: Browser, options: { phone?: boolean } = {}) {
  const context = await browser.newContext(
    options.phone ? { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true } : {
      viewport: { width: 1280, height: 800 },
    },
  );
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (error) => errors.push(`page: ${error.message}`));
  return { context, page, errors };
}

/** Signs up through the console's form; resolves once the signed-in shell shows. */
export async function signUpInPage(page: Page, base: string, name: string) {
  const email = `${name.toLowerCase().replace(/\W+/g, ".")}.${
    crypto.randomUUID().slice(0, 8)
  }@example.com`;
  await page.goto(`${base}/`);
  await page.getByLabel("Name").fill(name);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill("analytical-engine");
  await page.getByRole("button", { name: "Sign up" }).click();
  await page.getByRole("button", { name: "Sign out" }).waitFor();
  return email;
}
