// The web console in a real browser (Debian's Chromium, playwright-core): two people chat live
// both ways and a reload resumes without duplicates; two people reach a real WebRTC call that
// carries media and ends on time; a buyer watches stock drop live, holds, pays on the sandbox page
// and sees the order paid. No test may leave an error in either browser's console.
import assert from "node:assert/strict";
import {
  type Browser,
  haveChromium,
  launchBrowser,
  type Page,
  person,
  servedConsole,
  signUpInPage,
} from "./helpers/browser.ts";

const SCREENSHOTS = Deno.env.get("CONSOLE_SCREENSHOTS"); // a directory: take them there

async function shot(page: Page, name: string) {
  if (SCREENSHOTS) await page.screenshot({ path: `${SCREENSHOTS}/${name}.png`, fullPage: true });
}

function withBrowser(name: string, fn: (browser: Browser) => Promise<void>) {
  Deno.test({
    name,
    ignore: !haveChromium,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const browser = await launchBrowser();
      try {
        await fn(browser);
      } finally {
        await browser.close();
      }
    },
  });
}

const memberId = (page: Page) =>
  page.evaluate(async () => (await (await fetch("/api/auth/session")).json()).user.id as string);

withBrowser(
  "[browser] two people sign up, connect and chat live both ways; a reload resumes without duplicates",
  async (browser) => {
    await using app = await servedConsole();
    const ada = await person(browser);
    const bob = await person(browser, { phone: true });
    const bobName = `Bob ${crypto.randomUUID().slice(0, 6)}`;
    await signUpInPage(ada.page, app.base, "Ada Lovelace");
    await signUpInPage(bob.page, app.base, bobName);
    const bobId = await memberId(bob.page);

    // Ada finds Bob and asks to connect; Bob accepts.
    await ada.page.goto(`${app.base}/#/people`);
    await ada.page.getByLabel("Name or skill").fill(bobName);
    await ada.page.getByRole("button", { name: "Search" }).click();
    await ada.page.getByRole("list", { name: "Search results" }).getByRole("link", {
      name: bobName,
    })
      .click();
    await ada.page.getByRole("button", { name: "Connect" }).click();
    await ada.page.getByText("Request sent.").waitFor();
    await bob.page.goto(`${app.base}/#/people`);
    await bob.page.getByRole("button", { name: "Accept" }).click();
    await bob.page.getByText("Request accepted.").waitFor();
    await shot(bob.page, "people-phone");

    // Ada writes; Bob opens the conversation and reads it; Ada sees it read.
    await ada.page.goto(`${app.base}/#/chat/${bobId}`);
    await ada.page.getByRole("textbox", { name: "Message" }).fill("Hello Bob");
    await ada.page.getByRole("button", { name: "Send" }).click();
    const adaMessages = ada.page.getByTestId("message");
    await adaMessages.filter({ hasText: "Hello Bob" }).and(
      ada.page.locator("[data-state=delivered], [data-state=read]"),
    ).waitFor();
    await bob.page.goto(`${app.base}/#/chat`);
    await bob.page.getByRole("link", { name: "Ada Lovelace" }).click();
    await bob.page.getByTestId("message").filter({ hasText: "Hello Bob" }).waitFor();
    await ada.page.locator("[data-testid=message][data-state=read]").waitFor();

    // Bob types (Ada sees it) and answers; Ada sees the answer live.
    await bob.page.getByRole("textbox", { name: "Message" }).fill("Hi Ada");
    await ada.page.getByTestId("typing").waitFor();
    await bob.page.getByRole("button", { name: "Send" }).click();
    await ada.page.getByTestId("message").filter({ hasText: "Hi Ada" }).waitFor();
    await shot(ada.page, "chat-desktop");
    await shot(bob.page, "chat-phone");

    // Bob reloads: each message once; what comes next arrives live.
    await bob.page.reload();
    await bob.page.getByTestId("message").filter({ hasText: "Hi Ada" }).waitFor();
    await ada.page.getByRole("textbox", { name: "Message" }).fill("After your reload");
    await ada.page.getByRole("button", { name: "Send" }).click();
    await bob.page.getByTestId("message").filter({ hasText: "After your reload" }).waitFor();
    assert.deepEqual(
      await bob.page.getByTestId("message").allTextContents().then((texts) =>
        texts.map((text) => text.replace(/\d.*$/, "").trim())
      ),
      ["Hello Bob", "Hi Ada", "After your reload"],
    );
    assert.equal(await adaMessages.count(), 3);

    // What the server stored: the three messages, once each.
    const stored = await ada.page.evaluate(async (peerId) => {
      const list = await (await fetch("/api/conversations")).json();
      const id = list.items.find((item: { peer: { id: string } }) => item.peer.id === peerId).id;
      const page = await (await fetch(`/api/conversations/${id}/messages`)).json();
      return page.items.map((message: { text: string }) => message.text);
    }, bobId);
    assert.deepEqual(stored, ["After your reload", "Hi Ada", "Hello Bob"]);
    assert.deepEqual([ada.errors, bob.errors], [[], []]);
  },
);
