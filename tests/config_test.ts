import assert from "node:assert/strict";
import { ConfigError, loadConfig, parseConfig } from "../config.ts";

const secrets = () => ({ JWT_SECRET: "g".repeat(64), PAYMENTS_SANDBOX_SECRET: "h".repeat(64) });

Deno.test("[config] parseConfig reads defaults and rejects bad values with one clear line", async (t) => {
  await t.step("nothing set: embedded defaults, generated development secrets", () => {
    const config = parseConfig({}, secrets);
    assert.equal(config.PORT, 8000);
    assert.equal(config.APP_ENV, "development");
    assert.equal(config.DATA_DIR, ".data");
    assert.equal(config.PUBLIC_URL, "http://localhost:8000");
    assert.equal(config.JWT_SECRET, "g".repeat(64));
    assert.equal(config.DATABASE_URL, undefined);
    assert.deepEqual(config.RATE_LIMIT_LOGIN, { limit: 10, windowSeconds: 900 });
    assert.equal(config.BCRYPT_COST, 10);
    assert.equal(config.RESERVATION_TTL_SECONDS, 600);
    assert.equal(config.CALL_DURATION_SECONDS, 180);
    assert.deepEqual(config.CORS_ORIGINS, []);
  });

  await t.step("values are typed", () => {
    const config = parseConfig({
      PORT: "9001",
      ADMIN_EMAILS: " A@x.io, b@y.io ,",
      RATE_LIMIT_API: "50/1h",
      PUBLIC_URL: "https://convene.example/",
    }, secrets);
    assert.equal(config.PORT, 9001);
    assert.deepEqual(config.ADMIN_EMAILS, ["a@x.io", "b@y.io"]);
    assert.deepEqual(config.RATE_LIMIT_API, { limit: 50, windowSeconds: 3600 });
    assert.equal(config.PUBLIC_URL, "https://convene.example");
  });

  const QSTASH_KEYS = { QSTASH_CURRENT_SIGNING_KEY: "c", QSTASH_NEXT_SIGNING_KEY: "n" };
  const bad: [Record<string, string>, RegExp][] = [
    [{ PORT: "eighty" }, /^PORT: /],
    [{ PORT: "70000" }, /^PORT: /],
    [{ BCRYPT_COST: "8" }, /^BCRYPT_COST: must be at least 10/],
    [{ RATE_LIMIT_LOGIN: "ten per hour" }, /^RATE_LIMIT_LOGIN: expected <count>\/<n><s\|m\|h>/],
    [{ APP_ENV: "staging" }, /^APP_ENV: /],
    [{ DATABASE_URL: "mysql://x" }, /^DATABASE_URL: /],
    [{ JWT_SECRET: "short" }, /^JWT_SECRET: must be at least 32 bytes/],
    [
      { UPSTASH_REDIS_REST_URL: "https://r.example" },
      /^UPSTASH_REDIS_REST_TOKEN: required together/,
    ],
    [{ APP_ENV: "production" }, /^JWT_SECRET: required when APP_ENV=production/],
    [{ PAYMENTS_PROVIDER: "paystack" }, /^PAYSTACK_SECRET_KEY: required/],
    [
      {
        PAYMENTS_PROVIDER: "phonepe",
        PHONEPE_CLIENT_ID: "M1",
        PHONEPE_CLIENT_SECRET: "s",
        PHONEPE_CLIENT_VERSION: "1",
        PHONEPE_WEBHOOK_USERNAME: "convene_hooks",
      },
      /^PHONEPE_WEBHOOK_PASSWORD: required when PAYMENTS_PROVIDER=phonepe$/,
    ],
    [{ PAYMENTS_PROVIDER: "phonepe" }, /^PHONEPE_CLIENT_ID, PHONEPE_CLIENT_SECRET, .*: required/],
    [{ RESEND_API_KEY: "re_123" }, /^MAIL_FROM: required with RESEND_API_KEY/],
    [{ DENO_DEPLOYMENT_ID: "d1" }, /^QSTASH_TOKEN: required on Deno Deploy/],
    [
      { DENO_KV_PATH: "https://kv.example/connect" },
      /^QSTASH_TOKEN: required with a remote DENO_KV_PATH/,
    ],
    [
      { DENO_DEPLOYMENT_ID: "d1", QSTASH_TOKEN: "t", ...QSTASH_KEYS },
      /^S3_BUCKET: required on Deno Deploy/,
    ],
    [{ S3_ENDPOINT: "https://r2.example" }, /^S3_BUCKET: required with S3_ENDPOINT/],
    [{ S3_BUCKET: "media" }, /^S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY: required together/],
    [{ MEDIA_MAX_BYTES: "5MB" }, /^MEDIA_MAX_BYTES: /],
  ];
  for (const [env, message] of bad) {
    await t.step(`${JSON.stringify(env)} is refused`, () => {
      assert.throws(() => parseConfig(env, secrets), (error: Error) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, message);
        assert.equal(error.message.includes("\n"), false, "one line");
        return true;
      });
    });
  }
});

function denoEnv(): Record<string, string> {
  const names = ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"];
  return Object.fromEntries(
    names.flatMap((name) => {
      const value = Deno.env.get(name);
      return value === undefined ? [] : [[name, value]];
    }),
  );
}

Deno.test("[config] the server refuses to start on a bad PORT or without a production JWT_SECRET", async (t) => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ PORT: "not-a-port" }, /Configuration error: PORT: /],
    [
      { APP_ENV: "production" },
      /Configuration error: JWT_SECRET: required when APP_ENV=production/,
    ],
  ];
  for (const [env, message] of cases) {
    await t.step(JSON.stringify(env), async () => {
      const dataDir = await Deno.makeTempDir();
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", new URL("../main.ts", import.meta.url).pathname],
        // Only what Deno itself needs from the outer environment: a JWT_SECRET set there must not
        // make the production case start.
        clearEnv: true,
        env: { ...denoEnv(), ...env, DATA_DIR: dataDir, DENO_KV_PATH: ":memory:" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      await Deno.remove(dataDir, { recursive: true });
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 1);
      assert.match(stderr, message);
      assert.equal(stderr.trim().split("\n").length, 1, `one line, got: ${stderr}`);
    });
  }
});

Deno.test("[config] isolates starting at once on a new data directory share one set of secrets", async () => {
  const dir = await Deno.makeTempDir({ prefix: "convene-secrets-" });
  try {
    // What `deno serve --parallel` does: every isolate loads its config at the same moment.
    const configs = await Promise.all(
      Array.from({ length: 8 }, () => loadConfig({ DATA_DIR: dir, APP_ENV: "development" })),
    );
    const stored = JSON.parse(await Deno.readTextFile(`${dir}/secrets.json`));
    for (const config of configs) {
      assert.equal(config.JWT_SECRET, stored.JWT_SECRET);
      assert.equal(config.PAYMENTS_SANDBOX_SECRET, stored.PAYMENTS_SANDBOX_SECRET);
    }
    assert.deepEqual([...Deno.readDirSync(dir)].map((entry) => entry.name), ["secrets.json"]);
    // A restart reads them back.
    const again = await loadConfig({ DATA_DIR: dir, APP_ENV: "development" });
    assert.equal(again.JWT_SECRET, stored.JWT_SECRET);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
