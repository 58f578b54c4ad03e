// The web console in a real browser (Debian's Chromium, playwright-core): two people chat live
// both ways and a reload resumes without duplicates; two people reach a real WebRTC call that
// carries media and ends on time; a buyer watches stock drop live, holds, pays on the sandbox page
// and sees the order paid. No test may leave an error in either browser's console.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  type Browser,
  haveChromium,
  launchBrowser,
  type Page,
  person,
  servedConsole,
  signUpInPage,
} from "./helpers/browser.ts";
import { storeDeadLetter } from "../kv/dead-letters.ts";
import { members } from "./helpers/members.ts";
import { listDevMail } from "../providers/mail.ts";

/** What the tests read of the page's RTCPeerConnection (the tests have no DOM types). */
interface PeerConnection {
  connectionState: string;
  getStats(): Promise<
    { forEach(each: (report: { type: string; bytesReceived?: number }) => void): void }
  >;
}

/** A 1×1 PNG: a picture the browser really decodes. */
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
  "base64",
);

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
  "[browser] two people sign up, connect and chat live both ways; read receipts and unread chats in the navigation; a reload resumes without duplicates; notifications link to their subject; a muted conversation and notification choices stay after a reload",
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
    await ada.page.getByLabel("Name, bio or skill").fill(bobName);
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
    // Bob's navigation says a chat is unread (one row on his phone), until he reads it.
    await bob.page.getByTestId("unread-chats").filter({ hasText: /^1$/ }).waitFor();
    const header = await bob.page.locator("header").boundingBox();
    assert.ok(header && header.height < 80, `the phone's header is ${header?.height} px tall`);
    await bob.page.goto(`${app.base}/#/chat`);
    // Beside Ada's name, her picture: her initials, drawn (decoded by the browser, 64 px).
    const adaPicture = bob.page.getByRole("navigation", { name: "Conversations" })
      .getByTestId("avatar").first();
    await adaPicture.evaluate((image: { decode(): Promise<void> }) => image.decode());
    assert.equal(
      await adaPicture.evaluate((image: { naturalWidth: number }) => image.naturalWidth),
      64,
    );
    await bob.page.getByRole("link", { name: "Ada Lovelace" }).click();
    await bob.page.getByTestId("message").filter({ hasText: "Hello Bob" }).waitFor();
    await ada.page.locator("[data-testid=message][data-state=read]").waitFor();
    await bob.page.goto(`${app.base}/#/feed`);
    await bob.page.getByRole("link", { name: "Chat", exact: true }).waitFor();
    assert.equal(await bob.page.getByTestId("unread-chats").count(), 0, "read: no badge");
    await bob.page.goBack();
    await bob.page.getByTestId("message").filter({ hasText: "Hello Bob" }).waitFor();

    // Bob types (Ada sees it) and answers; Ada sees the answer live.
    await bob.page.getByRole("textbox", { name: "Message" }).fill("Hi Ada");
    await ada.page.getByTestId("typing").waitFor();
    await bob.page.getByRole("button", { name: "Send" }).click();
    await ada.page.getByTestId("message").filter({ hasText: "Hi Ada" }).waitFor();
    await shot(ada.page, "chat-desktop");
    await shot(bob.page, "chat-phone");

    // Ada's receipt never goes back: not when Bob answers, not after her reload.
    const readHello = ada.page.locator("[data-testid=message][data-state=read]").filter({
      hasText: "Hello Bob",
    });
    await ada.page.waitForTimeout(500); // the conversation list catches up with the answer
    assert.equal(await readHello.count(), 1, "still read after the answer");
    await ada.page.reload();
    await readHello.waitFor();

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

    // Ada sends Bob a picture and a PDF; he sees the picture in place (decoded: a real image
    // through the redirect and the signed link) and the PDF as a link that saves it.
    // A picture drawn by the browser itself (a canvas), so it looks like one in the screenshot.
    const drawn = await ada.page.evaluate(() => {
      // deno-lint-ignore no-explicit-any
      const canvas = (globalThis as any).document.createElement("canvas");
      [canvas.width, canvas.height] = [240, 140];
      const context = canvas.getContext("2d");
      context.fillStyle = "#eef2ff";
      context.fillRect(0, 0, 240, 140);
      context.fillStyle = "#2f6fde";
      context.fillRect(20, 50, 70, 40);
      context.fillRect(150, 50, 70, 40);
      context.fillRect(90, 68, 60, 4);
      return canvas.toDataURL("image/png").split(",")[1] as string;
    });
    await ada.page.getByLabel("Attach files").setInputFiles([
      { name: "diagram.png", mimeType: "image/png", buffer: Buffer.from(drawn, "base64") },
      { name: "notes.pdf", mimeType: "application/pdf", buffer: Buffer.from("%PDF-1.4\n%%EOF\n") },
    ]);
    await ada.page.getByRole("textbox", { name: "Message" }).fill("The diagram");
    await ada.page.getByRole("button", { name: "Send" }).click();
    const picture = bob.page.getByTestId("message").filter({ hasText: "The diagram" })
      .getByTestId("attachment-image");
    await picture.waitFor();
    // The tests have no DOM types: the image is read as what it is to the page, an object.
    await picture.evaluate((image: { decode(): Promise<void> }) => image.decode());
    assert.equal(
      await picture.evaluate((image: { naturalWidth: number }) => image.naturalWidth),
      240,
    );
    await bob.page.getByTestId("attachment-file").filter({ hasText: "notes.pdf" }).waitFor();
    // After a reload it is still there, from the history.
    await bob.page.reload();
    await picture.waitFor();
    await shot(bob.page, "chat-attachment-phone");

    // Ada's notifications link to their subject: Bob's acceptance, to Bob.
    await ada.page.goto(`${app.base}/#/notifications`);
    const accepted = ada.page.getByTestId("notification").filter({
      hasText: "accepted your request",
    });
    await accepted.getByRole("link", { name: "accepted your request" }).click();
    await ada.page.waitForURL(`${app.base}/#/people/${bobId}`);

    // Bob mutes the conversation; after a reload it is still muted. He turns likes off in the
    // app and messages off by email, on his profile; the choices stay.
    await bob.page.getByRole("button", { name: "Mute notifications" }).click();
    await bob.page.getByRole("button", { name: "Unmute notifications" }).waitFor();
    await bob.page.reload();
    await bob.page.getByRole("button", { name: "Unmute notifications" }).waitFor();
    await bob.page.goto(`${app.base}/#/profile`);
    await bob.page.getByRole("checkbox", { name: "Likes in the app" }).uncheck();
    await bob.page.getByTestId("choices-message").filter({ hasText: "Saved." }).waitFor();
    await bob.page.getByRole("checkbox", { name: "Messages by email" }).uncheck();
    await bob.page.reload();
    assert.equal(
      await bob.page.getByRole("checkbox", { name: "Likes in the app" }).isChecked(),
      false,
    );
    assert.equal(
      await bob.page.getByRole("checkbox", { name: "Messages by email" }).isChecked(),
      false,
    );
    assert.equal(
      await bob.page.getByRole("checkbox", { name: "Messages in the app" }).isChecked(),
      true,
    );
    assert.deepEqual([ada.errors, bob.errors], [[], []]);
  },
);

withBrowser(
  "[browser] two people join one intent and talk over a real WebRTC call that ends on time",
  async (browser) => {
    const seconds = 12;
    await using app = await servedConsole({ env: { CALL_DURATION_SECONDS: String(seconds) } });
    const ada = await person(browser);
    const bob = await person(browser, { phone: true });
    await signUpInPage(ada.page, app.base, "Ada Caller");
    await signUpInPage(bob.page, app.base, "Bob Caller");
    const intent = `webrtc ${crypto.randomUUID().slice(0, 8)}`;
    for (const { page } of [ada, bob]) {
      await page.goto(`${app.base}/#/call`);
      await page.getByLabel("Intent").fill(intent);
      await page.getByRole("button", { name: "Join" }).click();
    }
    await Promise.all([ada, bob].map(({ page }) => page.getByTestId("countdown").waitFor()));

    // Both peer connections connect and receive media (the fake camera and microphone).
    for (const { page } of [ada, bob]) {
      const deadline = Date.now() + 20_000;
      let seen = { state: "none", bytes: 0 };
      while (!(seen.state === "connected" && seen.bytes > 0)) {
        assert.ok(Date.now() < deadline, `the call never carried media: ${JSON.stringify(seen)}`);
        await new Promise((resolve) => setTimeout(resolve, 250));
        seen = await page.evaluate(async () => {
          const pc = (globalThis as unknown as { conveneCall?: PeerConnection }).conveneCall;
          let bytes = 0;
          (await pc?.getStats())?.forEach((report) => {
            if (report.type === "inbound-rtp") bytes += report.bytesReceived ?? 0;
          });
          return { state: pc?.connectionState ?? "none", bytes };
        });
      }
    }
    await shot(ada.page, "call-desktop");
    await shot(bob.page, "call-phone");

    // The call ends by itself when its time is up, for both, and history says so.
    await Promise.all(
      [ada, bob].map(({ page }) =>
        page.getByTestId("call-ended").filter({ hasText: "timeout" }).waitFor({
          timeout: (seconds + 10) * 1000,
        })
      ),
    );
    const history = await ada.page.evaluate(async () =>
      (await (await fetch("/api/history/interactions")).json()).items
    );
    assert.equal(history.length, 1);
    assert.equal(history[0].outcome, "timeout");
    assert.ok(
      history[0].durationSeconds >= seconds && history[0].durationSeconds <= seconds + 3,
      `lasted ${history[0].durationSeconds} s of ${seconds}`,
    );
    assert.equal(
      await ada.page.evaluate(() =>
        (globalThis as unknown as { conveneCall?: PeerConnection }).conveneCall?.connectionState
      ),
      "closed",
    );
    assert.deepEqual([ada.errors, bob.errors], [[], []]);
  },
);

withBrowser(
  "[browser] a buyer watches stock drop live as another buys, holds, pays on the sandbox page and sees the order paid",
  async (browser) => {
    await using app = await servedConsole({ env: { ADMIN_EMAILS: "admin@example.com" } });
    const admin = await app.http("POST", "/api/auth/signup", {
      body: { name: "Admin", email: "admin@example.com", password: "analytical-engine" },
    });
    const token = admin.body.token;
    const product = await app.http("POST", "/api/products", {
      token,
      body: { name: "Mechanical keyboard", priceCents: 4900, currency: "USD" },
    });
    const sale = await app.http("POST", "/api/sales", {
      token,
      body: {
        items: [{ productId: product.body.id, stock: 5, priceCents: 2900 }],
        startsAt: new Date().toISOString(),
        endsAt: new Date(Date.now() + 3_600_000).toISOString(),
        perUserLimit: 2,
      },
    });
    assert.equal(sale.status, 201);

    const buyer = await person(browser);
    const watcher = await person(browser, { phone: true });
    await signUpInPage(buyer.page, app.base, "Buyer");
    await signUpInPage(watcher.page, app.base, "Watcher");
    // The buyer finds the sale in the catalogue and opens it; the watcher follows a shared link.
    await buyer.page.goto(`${app.base}/#/sale`);
    const listed = buyer.page.getByTestId("catalogue-sale").filter({
      hasText: "Mechanical keyboard",
    });
    await listed.getByTestId("catalogue-stock").filter({ hasText: /^5$/ }).waitFor();
    await listed.getByText(/ends in (59|60) min/).waitFor();
    await shot(buyer.page, "catalogue-desktop");
    await listed.getByRole("button", { name: "Open" }).click();
    await buyer.page.waitForURL(`${app.base}/#/sale/${sale.body.id}`);
    await watcher.page.goto(`${app.base}/#/sale/${sale.body.id}`);
    for (const { page } of [buyer, watcher]) {
      await page.getByTestId("stock").filter({ hasText: /^5$/ }).waitFor();
    }
    await shot(watcher.page, "sale-phone");

    await buyer.page.getByRole("button", { name: "Reserve" }).click();
    await watcher.page.getByTestId("stock").filter({ hasText: /^4$/ }).waitFor(); // live, no reload
    const countdown = Number(await buyer.page.getByTestId("hold-countdown").textContent());
    assert.ok(countdown > 500 && countdown <= 600, `${countdown} s left to pay`);
    await shot(buyer.page, "sale-desktop");

    await buyer.page.getByRole("button", { name: "Checkout" }).click();
    await buyer.page.waitForURL(/\/sandbox\/pay\//);
    await buyer.page.getByRole("button", { name: "Pay" }).click();
    await buyer.page.getByText("Payment sent").waitFor();
    await buyer.page.getByRole("link", { name: "Back to your orders" }).click();
    await buyer.page.locator("[data-testid=order][data-status=paid]").waitFor();
    await shot(buyer.page, "orders-desktop");
    assert.equal(await watcher.page.getByTestId("stock").textContent(), "4", "sold, not returned");

    // A second hold, checked out but not paid: cancelled from the orders page, its unit back.
    await buyer.page.goto(`${app.base}/#/sale/${sale.body.id}`);
    await buyer.page.getByRole("button", { name: "Reserve" }).click();
    await watcher.page.getByTestId("stock").filter({ hasText: /^3$/ }).waitFor();
    await buyer.page.getByRole("button", { name: "Checkout" }).click();
    await buyer.page.waitForURL(/\/sandbox\/pay\//);
    await buyer.page.goto(`${app.base}/#/orders`);
    await buyer.page.getByRole("button", { name: /^Cancel order for 1 × Mechanical keyboard/ })
      .click();
    await buyer.page.locator("[data-testid=order][data-status=cancelled]").waitFor();
    await watcher.page.getByTestId("stock").filter({ hasText: /^4$/ }).waitFor(); // back, live
    assert.deepEqual([buyer.errors, watcher.errors], [[], []]);
  },
);

withBrowser(
  "[browser] a merchant runs a sale from the console: products survive a reload, the share link opens it, a restock and an early end reach a watcher live, a refund, an edit and a call-off, all in the audit log",
  async (browser) => {
    const rootEmail = `merchant.${crypto.randomUUID().slice(0, 8)}@example.com`;
    await using app = await servedConsole({ env: { ADMIN_EMAILS: rootEmail } });
    const merchant = await person(browser);
    const watcher = await person(browser, { phone: true });
    await merchant.page.goto(`${app.base}/`);
    await merchant.page.getByLabel("Name").fill("Mia Merchant");
    await merchant.page.getByLabel("Email").fill(rootEmail);
    await merchant.page.getByLabel("Password").fill("analytical-engine");
    await merchant.page.getByRole("button", { name: "Sign up" }).click();
    await merchant.page.getByRole("button", { name: "Sign out" }).waitFor();
    await signUpInPage(watcher.page, app.base, "Wes Watcher");

    // A product, still listed after a reload; a sale of it.
    await merchant.page.goto(`${app.base}/#/admin`);
    await merchant.page.getByLabel("Name").fill("Desk lamp");
    await merchant.page.getByLabel("Price (USD)").fill("12.00");
    await merchant.page.getByRole("button", { name: "Create product" }).click();
    await merchant.page.getByTestId("admin-product").filter({ hasText: "Desk lamp" }).waitFor();
    await merchant.page.reload();
    await merchant.page.getByTestId("admin-product").filter({ hasText: "Desk lamp" }).waitFor();
    await merchant.page.getByLabel("Stock of each").fill("3");
    await merchant.page.getByRole("button", { name: "Start sale" }).click();
    const card = merchant.page.getByTestId("admin-sale");
    const link = card.getByTestId("share-link");
    await link.waitFor();
    const shared = await link.textContent();
    assert.match(shared ?? "", /^http:\/\/.+\/#\/sale\/[\w-]+$/);
    await shot(merchant.page, "admin-desktop");

    // The watcher follows the shared link; the merchant's link opens the same page.
    await watcher.page.goto(shared!);
    await watcher.page.getByTestId("stock").filter({ hasText: /^3$/ }).waitFor();
    await link.click();
    await merchant.page.getByTestId("stock").filter({ hasText: /^3$/ }).waitFor();

    // The watcher buys one.
    await watcher.page.getByRole("button", { name: "Reserve" }).click();
    await watcher.page.getByRole("button", { name: "Checkout" }).click();
    await watcher.page.waitForURL(/\/sandbox\/pay\//);
    await watcher.page.getByRole("button", { name: "Pay" }).click();
    await watcher.page.getByText("Payment sent").waitFor();
    await watcher.page.goto(shared!);

    // A restock and an early end, from the admin page: the watcher sees both without a reload.
    await merchant.page.goto(`${app.base}/#/admin`);
    await merchant.page.getByLabel("Units to add").fill("5");
    await merchant.page.getByRole("button", { name: "Restock Desk lamp" }).click();
    await watcher.page.getByTestId("stock").filter({ hasText: /^7$/ }).waitFor();
    await card.getByTestId("admin-stock").filter({ hasText: /^7$/ }).waitFor();
    await merchant.page.getByRole("button", { name: "End now" }).click();
    await watcher.page.getByTestId("sale-status").filter({ hasText: "ended" }).waitFor();
    await merchant.page.getByText("No sale is on or announced.").waitFor();

    // The watcher's order is refunded from the list of paid orders.
    await merchant.page.getByRole("button", { name: "Refund 1 × Desk lamp" }).click();
    await merchant.page.getByTestId("admin-message").filter({ hasText: "Refunded 10.00 USD." })
      .waitFor();
    await merchant.page.getByText("No paid order to refund.").waitFor();
    await watcher.page.goto(`${app.base}/#/orders`);
    await watcher.page.locator("[data-testid=order][data-status=refunded]").waitFor();

    // A sale announced for later: edited before it starts, then called off.
    const newSale = merchant.page.getByRole("form", { name: "New sale" });
    await newSale.getByLabel("Starts in (minutes)").fill("30");
    await newSale.getByRole("button", { name: "Start sale" }).click();
    const announced = card.filter({ hasText: "scheduled" });
    await announced.getByLabel("Limit per buyer").fill("1");
    await announced.getByRole("button", { name: "Save changes" }).click();
    const log = merchant.page.getByTestId("audit-entry");
    await log.filter({ hasText: "sale.edit" }).waitFor();
    await announced.getByRole("button", { name: "Call off" }).click();
    await merchant.page.getByText("No sale is on or announced.").waitFor();

    // Every admin action is in the audit log, newest first, with who did it.
    await log.filter({ hasText: "sale.cancel" }).waitFor();
    const actions = (await log.allTextContents()).map((text) => text.split(" · ")[2]);
    assert.deepEqual(actions, [
      "sale.cancel",
      "sale.edit",
      "sale.create",
      "order.refund",
      "sale.end",
      "sale.restock",
      "sale.create",
      "product.create",
    ]);
    assert.ok((await log.allTextContents()).every((text) => text.includes("Mia Merchant")));
    assert.deepEqual([merchant.errors, watcher.errors], [[], []]);
  },
);

withBrowser(
  "[browser] a post with an image is liked and commented; a profile photo; an interview is taken, scored and the skill verified",
  async (browser) => {
    await using app = await servedConsole();
    const ada = await person(browser);
    const bob = await person(browser);
    const adaEmail = await signUpInPage(ada.page, app.base, "Ada Writer");
    await signUpInPage(bob.page, app.base, "Bob Candidate");
    const image = { name: "pixel.png", mimeType: "image/png", buffer: PNG };

    // The feed: a post with an image, a like and a comment.
    await ada.page.getByLabel("What are you working on?").fill("Shipping the console");
    await ada.page.getByLabel("Image (optional)").setInputFiles(image);
    await ada.page.getByRole("button", { name: "Post", exact: true }).click();
    const post = ada.page.getByTestId("post").filter({ hasText: "Shipping the console" });
    await post.locator("img.media").waitFor();
    await post.getByRole("button", { name: "Like (0)" }).click();
    await post.getByRole("button", { name: "Unlike (1)" }).waitFor();
    await post.getByRole("button", { name: "Comments (0)" }).click();
    await post.getByRole("textbox", { name: "Comment", exact: true }).fill("First!");
    await post.getByRole("button", { name: "Reply" }).click();
    await post.getByRole("button", { name: "Comments (1)" }).waitFor();
    await shot(ada.page, "feed-desktop");

    // A profile photo.
    await ada.page.goto(`${app.base}/#/profile`);
    await ada.page.getByLabel("Photo").setInputFiles(image);
    await ada.page.getByText("Photo updated.").waitFor();
    await ada.page.getByRole("img", { name: "Your photo" }).waitFor();

    // An interview: Ada opens it, Bob answers, Ada scores, Bob's skill is verified.
    await ada.page.goto(`${app.base}/#/interviews`);
    await ada.page.getByLabel("Candidate").fill("Bob Cand");
    await ada.page.getByRole("button", { name: "Bob Candidate" }).click();
    await ada.page.getByTestId("picked").filter({ hasText: "Chosen: Bob Candidate" }).waitFor();
    await ada.page.getByLabel("Skill").fill("TypeScript");
    await ada.page.getByLabel("Prompt").fill("Explain structural typing.");
    await ada.page.getByRole("button", { name: "Create" }).click();
    await ada.page.getByText("Interview created.").waitFor();
    await bob.page.goto(`${app.base}/#/interviews`);
    await bob.page.getByRole("button", { name: "Start" }).click();
    await bob.page.getByLabel("Your answer").fill("Types match by shape: correctness and clarity.");
    await bob.page.getByRole("button", { name: "Submit" }).click();
    await bob.page.locator(
      "[data-testid=interview]:not([data-state=STARTED]):not([data-state=CREATED])",
    )
      .waitFor();
    await ada.page.getByLabel("correctness (0–10)").fill("9");
    await ada.page.getByLabel("clarity (0–10)").fill("8");
    await ada.page.getByRole("button", { name: "Score" }).click();
    await ada.page.locator("[data-testid=interview][data-state=SCORED]").getByText("passed")
      .waitFor();
    await bob.page.goto(`${app.base}/#/profile`);
    await bob.page.reload(); // the profile is read at sign-in
    await bob.page.getByText("Verified skills: typescript").waitFor();
    await shot(bob.page, "interviews-desktop");

    // Signing out ends the session; signing in again restores it.
    await ada.page.getByRole("button", { name: "Sign out" }).click();
    await ada.page.getByRole("button", { name: "I have an account: sign in" }).click();
    await ada.page.getByLabel("Email").fill(adaEmail);
    await ada.page.getByLabel("Password").fill("analytical-engine");
    await ada.page.getByRole("button", { name: "Sign in" }).click();
    await ada.page.getByRole("button", { name: "Sign out" }).waitFor();
    assert.deepEqual([ada.errors, bob.errors], [[], []]);
  },
);

withBrowser(
  "[browser] /docs renders the interactive reference of every route without errors",
  async (browser) => {
    await using app = await servedConsole();
    const reader = await person(browser);
    await reader.page.goto(`${app.base}/docs`);
    await reader.page.getByRole("heading", { name: /Convene API/ }).waitFor();
    await reader.page.getByRole("heading", { name: "Identity" }).waitFor();
    await reader.page.getByText("/api/sales/{id}/reservations").first().waitFor();
    await shot(reader.page, "reference-desktop");
    assert.deepEqual(reader.errors, []);
  },
);

withBrowser(
  "[browser] the console's bodyless writes: like and unlike, follow and unfollow, leave the queue, discard a dead letter; the operations page, for admins only",
  async (browser) => {
    const rootEmail = `root.${crypto.randomUUID().slice(0, 8)}@example.com`;
    await using app = await servedConsole({ env: { ADMIN_EMAILS: rootEmail } });
    const [bob] = await members(app.deps, 1, { name: () => "Bob Babbage" });
    const ada = await person(browser);
    await ada.page.goto(`${app.base}/`);
    await ada.page.getByLabel("Name").fill("Ada Root");
    await ada.page.getByLabel("Email").fill(rootEmail);
    await ada.page.getByLabel("Password").fill("analytical-engine");
    await ada.page.getByRole("button", { name: "Sign up" }).click();
    await ada.page.getByRole("button", { name: "Sign out" }).waitFor();

    // Like, then unlike, her own post.
    await ada.page.goto(`${app.base}/#/feed`);
    await ada.page.getByLabel("What are you working on?").fill("A difference engine");
    await ada.page.getByRole("button", { name: "Post" }).click();
    await ada.page.getByRole("button", { name: "Like (0)" }).click();
    await ada.page.getByRole("button", { name: "Unlike (1)" }).click();
    await ada.page.getByRole("button", { name: "Like (0)" }).waitFor();

    // Follow, then unfollow, Bob.
    await ada.page.goto(`${app.base}/#/people/${bob.user.id}`);
    await ada.page.getByRole("button", { name: "Follow", exact: true }).click();
    await ada.page.getByText("Following.").waitFor();
    await ada.page.getByRole("button", { name: "Unfollow" }).click();
    await ada.page.getByText("Unfollowed.").waitFor();
    await ada.page.getByRole("button", { name: "Follow", exact: true }).waitFor();

    // Join a queue, then leave it.
    await ada.page.goto(`${app.base}/#/call`);
    await ada.page.getByLabel("Intent").fill(`bodyless-${crypto.randomUUID().slice(0, 6)}`);
    await ada.page.getByRole("button", { name: "Join" }).click();
    await ada.page.getByRole("button", { name: "Leave" }).click();
    await ada.page.getByText("Left the queue.").waitFor();

    // Discard a dead letter as an administrator.
    await storeDeadLetter(app.deps.kv, { id: "letter-to-discard", name: "greet", payload: {} });
    await ada.page.goto(`${app.base}/#/admin`);
    await ada.page.getByRole("button", { name: "Discard" }).click();
    await ada.page.getByText("Discarded.").waitFor();

    // The operations page: this isolate's live figures with their charts.
    await ada.page.getByRole("link", { name: "Operations" }).click();
    const figure = (label: string) =>
      ada.page.getByRole("figure", { name: label }).getByTestId("figure-value");
    await figure("Active sockets").waitFor();
    assert.ok(Number(await figure("Active sockets").textContent()) >= 1, "her own socket");
    assert.equal(await figure("Dead letters").textContent(), "0");
    assert.equal(await ada.page.getByRole("img", { name: /over the last minutes/ }).count(), 6);
    await shot(ada.page, "operations-desktop");

    // A member who is not an admin has no link to it, and is refused when they go there anyway.
    const eve = await person(browser);
    await signUpInPage(eve.page, app.base, "Eve Member");
    assert.equal(await eve.page.getByRole("link", { name: "Operations" }).count(), 0);
    await eve.page.goto(`${app.base}/#/operations`);
    await eve.page.getByRole("alert").getByText(/admin/i).waitFor();
    assert.equal(await eve.page.getByTestId("figure").count(), 0);

    const state = await ada.page.evaluate(async (bobId) => {
      const me = (await (await fetch("/api/auth/session")).json()).user.id;
      const following = await (await fetch(`/api/users/${me}/following`)).json();
      const letters = await (await fetch("/api/admin/dead-letters")).json();
      return {
        follows: following.items.some((item: { id: string }) => item.id === bobId),
        letters: letters.items.length,
      };
    }, bob.user.id);
    assert.deepEqual(state, { follows: false, letters: 0 });
    assert.deepEqual(ada.errors, [], "no error in the console, its CSP included");
  },
);

withBrowser(
  "[browser] a forgotten password is reset from its mailed link; a member sees where they are signed in and signs another device out",
  async (browser) => {
    await using app = await servedConsole();
    const ada = await person(browser);
    const phone = await person(browser, { phone: true });
    const email = await signUpInPage(ada.page, app.base, "Ada Resetter");
    await ada.page.getByRole("button", { name: "Sign out" }).click();

    // Forgot the password: the sign-in form asks for the address, and a link is mailed.
    await ada.page.getByRole("button", { name: "I have an account: sign in" }).click();
    await ada.page.getByRole("button", { name: "Forgot your password?" }).click();
    await ada.page.getByLabel("Email").fill(email);
    await ada.page.getByRole("button", { name: "Email me a link" }).click();
    await ada.page.getByRole("status").getByText(/a link to reset its password is on its way/)
      .waitFor();
    await app.deps.outbox.flush();
    await app.jobsSettled("send-email");
    const { items } = await listDevMail(app.deps.kv, { limit: 10 });
    const link = items.find((mail) => mail.to === email)?.text.match(/http\S+reset-password\S+/);
    assert.ok(link, "the reset email carries its link");

    // The link opens a page that sets the new password; the old one stops working.
    await ada.page.goto(link[0]);
    await ada.page.getByLabel("New password", { exact: true }).fill("difference-engine");
    await ada.page.getByRole("button", { name: "Set the new password" }).click();
    await ada.page.getByText("Your password is reset").waitFor();
    await ada.page.getByRole("link", { name: "Sign in" }).click();
    await ada.page.getByRole("button", { name: "I have an account: sign in" }).click();
    await ada.page.getByLabel("Email").fill(email);
    await ada.page.getByLabel("Password").fill("difference-engine");
    await ada.page.getByRole("button", { name: "Sign in", exact: true }).click();
    await ada.page.getByRole("button", { name: "Sign out" }).waitFor();

    // Signed in on a phone too: the profile lists both, and signs the phone out.
    await phone.page.goto(`${app.base}/`);
    await phone.page.getByRole("button", { name: "I have an account: sign in" }).click();
    await phone.page.getByLabel("Email").fill(email);
    await phone.page.getByLabel("Password").fill("difference-engine");
    await phone.page.getByRole("button", { name: "Sign in", exact: true }).click();
    await phone.page.getByRole("button", { name: "Sign out" }).waitFor();
    await ada.page.goto(`${app.base}/#/profile`);
    const sessions = ada.page.getByTestId("session");
    await sessions.nth(1).waitFor();
    assert.equal(await sessions.count(), 2);
    await sessions.filter({ hasText: "(this device)" }).waitFor();
    await ada.page.getByRole("button", { name: "Sign out this device" }).click();
    await ada.page.getByTestId("sessions-message").filter({ hasText: "signed out" }).waitFor();
    assert.equal(await sessions.count(), 1);
    await phone.page.reload();
    await phone.page.getByRole("button", { name: "I have an account: sign in" }).waitFor();
    assert.deepEqual([ada.errors, phone.errors], [[], []]);
  },
);

withBrowser(
  "[browser] moderation: a member reports another; an admin resolves it, suspends them (signed out, cannot sign in) and restores them, all in the audit log",
  async (browser) => {
    const rootEmail = `mod.${crypto.randomUUID().slice(0, 8)}@example.com`;
    await using app = await servedConsole({ env: { ADMIN_EMAILS: rootEmail } });
    const mod = await person(browser);
    const ada = await person(browser);
    const bob = await person(browser);
    await mod.page.goto(`${app.base}/`);
    await mod.page.getByLabel("Name").fill("Mona Moderator");
    await mod.page.getByLabel("Email").fill(rootEmail);
    await mod.page.getByLabel("Password").fill("analytical-engine");
    await mod.page.getByRole("button", { name: "Sign up" }).click();
    await mod.page.getByRole("button", { name: "Sign out" }).waitFor();
    await signUpInPage(ada.page, app.base, "Ada Reporter");
    const bobEmail = await signUpInPage(bob.page, app.base, "Bob Troll");

    // Ada finds Bob and reports him.
    await ada.page.goto(`${app.base}/#/people`);
    await ada.page.getByLabel("Name, bio or skill").fill("Troll");
    await ada.page.getByRole("button", { name: "Search" }).click();
    await ada.page.getByRole("list", { name: "Search results" })
      .getByRole("link", { name: "Bob Troll" }).click();
    await ada.page.getByLabel("Report reason").fill("insults in chat");
    await ada.page.getByRole("button", { name: "Report" }).click();
    await ada.page.getByText("Reported; thank you.").waitFor();

    // The admin resolves the report and suspends Bob: his session is over (a reload shows the
    // sign-in form), and signing in again is refused.
    await mod.page.goto(`${app.base}/#/admin`);
    const report = mod.page.getByTestId("admin-report").filter({ hasText: "insults in chat" });
    await report.getByLabel("Note on Bob Troll's report").fill("warned, then suspended");
    await report.getByRole("button", { name: "Resolve" }).click();
    await report.getByTestId("report-resolution").filter({ hasText: "warned, then suspended" })
      .waitFor();
    await report.getByRole("button", { name: "Suspend Bob Troll" }).click();
    await mod.page.getByTestId("admin-message").filter({ hasText: "Bob Troll is suspended." })
      .waitFor();
    await bob.page.reload();
    await bob.page.getByRole("button", { name: "I have an account: sign in" }).click();
    await bob.page.getByLabel("Email").fill(bobEmail);
    await bob.page.getByLabel("Password").fill("analytical-engine");
    await bob.page.getByRole("button", { name: "Sign in", exact: true }).click();
    await bob.page.getByRole("alert").getByText("This account is suspended.").waitFor();

    // Restored, he signs in again.
    await report.getByRole("button", { name: "Restore Bob Troll" }).click();
    await mod.page.getByTestId("admin-message").filter({ hasText: "Bob Troll is restored." })
      .waitFor();
    await bob.page.getByRole("button", { name: "Sign in", exact: true }).click();
    await bob.page.getByRole("button", { name: "Sign out" }).waitFor();
    const log = mod.page.getByTestId("audit-entry");
    await log.filter({ hasText: "member.restore" }).waitFor();
    const actions = (await log.allTextContents()).map((text) => text.split(" · ")[2]);
    assert.deepEqual(actions, ["member.restore", "member.suspend", "report.resolve"]);
    // The failed sign-in was answered 403: the only error any console logged.
    assert.deepEqual([mod.errors, ada.errors], [[], []]);
    assert.ok(bob.errors.every((error) => /403/.test(error)), JSON.stringify(bob.errors));
  },
);

withBrowser(
  "[browser] a new member confirms their address from the emailed link: the banner says what waits, the link clears it, a new address waits for its own link",
  async (browser) => {
    await using app = await servedConsole({ env: { EMAIL_VERIFICATION: "required" } });
    const ada = await person(browser);
    const email = await signUpInPage(ada.page, app.base, "Ada Confirmer");
    const banner = ada.page.getByRole("note", { name: "Confirm your address" });
    await banner.getByText(/matching, selling and more than five connection requests/).waitFor();
    await banner.getByRole("button", { name: "Send the link again" }).click();
    await banner.getByRole("status").filter({ hasText: `Sent to ${email}.` }).waitFor();

    const linkTo = async (to: string, count: number) => {
      await app.deps.outbox.flush();
      await app.jobsSettled("send-email", count);
      const { items } = await listDevMail(app.deps.kv, { limit: 20 });
      return items.find((mail) => mail.to === to)?.text.match(/http\S+verify-email\S+/)?.[0];
    };
    const link = await linkTo(email, 2);
    assert.ok(link, "the confirmation email carries its link");
    await ada.page.goto(link);
    await ada.page.getByRole("status").filter({ hasText: `${email} is confirmed.` }).waitFor();
    await ada.page.getByRole("link", { name: "Go to Convene" }).click();
    await ada.page.getByRole("button", { name: "Sign out" }).waitFor();
    assert.equal(await banner.count(), 0, "no banner once confirmed");

    // A new address: the profile says it waits; its link makes it the address.
    const newEmail = `ada.moved.${crypto.randomUUID().slice(0, 6)}@example.com`;
    await ada.page.goto(`${app.base}/#/profile`);
    const change = ada.page.getByRole("form", { name: "Change your email address" });
    await change.getByLabel("New address").fill(newEmail);
    await change.getByLabel("Your password").fill("analytical-engine");
    await change.getByRole("button", { name: "Change address" }).click();
    await change.getByRole("status").filter({ hasText: `We sent a link to ${newEmail}` }).waitFor();
    const moved = await linkTo(newEmail, 3);
    assert.ok(moved);
    await ada.page.goto(moved);
    await ada.page.getByRole("status").filter({ hasText: `${newEmail} is confirmed.` }).waitFor();
    await ada.page.getByRole("link", { name: "Go to Convene" }).click();
    await ada.page.getByRole("button", { name: "Sign out" }).waitFor();
    await ada.page.goto(`${app.base}/#/profile`);
    await ada.page.getByRole("form", { name: "Change your email address" })
      .getByText(`${newEmail} (confirmed)`).waitFor();
    assert.deepEqual(ada.errors, []);
  },
);

/**
 * Presses Tab until the focused element's accessible text is `name` (at most 60 times): what a
 * keyboard user does. Fails when focus never gets there, or gets there without a visible ring.
 */
async function tabTo(page: Page, name: RegExp) {
  for (let presses = 0; presses < 60; presses++) {
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => {
      // The tests have no DOM types: the page's globals, as what they are there.
      // deno-lint-ignore no-explicit-any
      const { document, getComputedStyle } = globalThis as any;
      const element = document.activeElement;
      const label = element?.labels?.[0]?.textContent ?? "";
      return {
        name: `${element?.getAttribute("aria-label") ?? ""} ${label} ${element?.textContent ?? ""}`,
        outline: getComputedStyle(element).outlineStyle,
      };
    });
    if (name.test(focused.name)) {
      assert.notEqual(focused.outline, "none", `focus on ${name} is visible`);
      return;
    }
  }
  throw new Error(`Tab never reached ${name}`);
}

withBrowser(
  "[browser] the console by keyboard alone, on a desktop and on a phone: the navigation, a message sent with Enter, the people picker, focus always visible",
  async (browser) => {
    await using app = await servedConsole();
    for (const phone of [false, true]) {
      const who = await person(browser, { phone });
      const friend = await person(browser);
      const friendName = `Kim ${crypto.randomUUID().slice(0, 6)}`;
      await signUpInPage(who.page, app.base, phone ? "Pat Phone" : "Dee Desk");
      await signUpInPage(friend.page, app.base, friendName);
      const friendId = await memberId(friend.page);
      const requestId = await who.page.evaluate(async (toUserId) => {
        const answer = await fetch("/api/connections", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ toUserId }),
        });
        return (await answer.json()).id as string;
      }, friendId);
      await friend.page.evaluate(async (id) => {
        await fetch(`/api/connections/${id}`, {
          method: "PATCH",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ status: "accepted" }),
        });
      }, requestId);

      // The navigation: Tab to Chat, Enter opens it.
      await who.page.goto(`${app.base}/#/feed`);
      await who.page.locator("body").focus();
      await tabTo(who.page, /^\s*Chat\s*$/);
      await who.page.keyboard.press("Enter");
      await who.page.waitForURL(/#\/chat$/);

      // A message: Tab to the field, type, Enter sends it.
      await who.page.goto(`${app.base}/#/chat/${friendId}`);
      await tabTo(who.page, /Message/);
      await who.page.keyboard.type("Sent by keyboard");
      await who.page.keyboard.press("Enter");
      await who.page.getByTestId("message").filter({ hasText: "Sent by keyboard" }).and(
        who.page.locator("[data-state=delivered], [data-state=read]"),
      ).waitFor();
      await tabTo(who.page, /Attach files/); // the file picker is in the Tab order too

      // The people picker: type a name, Tab to the match, Enter chooses it.
      await who.page.goto(`${app.base}/#/interviews`);
      await tabTo(who.page, /Candidate/);
      await who.page.keyboard.type(friendName);
      await who.page.getByRole("list", { name: `Members matching ${friendName}` }).waitFor();
      await tabTo(who.page, new RegExp(friendName));
      await who.page.keyboard.press("Enter");
      await who.page.getByTestId("picked").filter({ hasText: `Chosen: ${friendName}` }).waitFor();
      await shot(who.page, phone ? "picker-phone" : "picker-desktop");
      assert.deepEqual([who.errors, friend.errors], [[], []]);
      await who.context.close();
      await friend.context.close();
    }
  },
);
