// Environment → typed Config: every variable the README's "Configuration" lists, parsed once at start-up.
import { z } from "zod";

/** A rate written as `<count>/<n><s|m|h>`, e.g. `10/15m`. */
export interface Rate {
  limit: number;
  windowSeconds: number;
}

const UNIT_SECONDS = { s: 1, m: 60, h: 3600 } as const;

const rate = z.string().trim().transform((text, ctx): Rate => {
  const match = /^(\d+)\/(\d+)([smh])$/.exec(text);
  const limit = match ? Number(match[1]) : 0;
  const windowSeconds = match ? Number(match[2]) * UNIT_SECONDS[match[3] as "s" | "m" | "h"] : 0;
  if (limit < 1 || windowSeconds < 1) {
    ctx.addIssue({
      code: "custom",
      message: `expected <count>/<n><s|m|h> like 10/15m, got "${text}"`,
    });
    return z.NEVER;
  }
  return { limit, windowSeconds };
});

const list = z.string().transform((text) =>
  text.split(",").map((item) => item.trim()).filter((item) => item.length > 0)
);
const emailList = list.transform((items) => items.map((item) => item.toLowerCase()));
const optional = z.string().trim().min(1).optional();

/** What PhonePe's standard checkout needs: its API credentials and the webhook's. */
const PHONEPE_VARIABLES = [
  "PHONEPE_CLIENT_ID",
  "PHONEPE_CLIENT_SECRET",
  "PHONEPE_CLIENT_VERSION",
  "PHONEPE_WEBHOOK_USERNAME",
  "PHONEPE_WEBHOOK_PASSWORD",
] as const;
const seconds = (fallback: number) => z.coerce.number().int().positive().default(fallback);
const url = z.url({ protocol: /^https?$/ });

const schema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8000),
  /** The address `deno task dev|start` listens on: every interface, unless set (`127.0.0.1`). */
  HOST: z.string().trim().regex(/^[\w.:\[\]-]{1,255}$/, "an address or host name").default(
    "0.0.0.0",
  ),
  APP_ENV: z.enum(["development", "test", "production"]).default("development"),
  DATA_DIR: z.string().min(1).default(".data"),
  DENO_KV_PATH: optional,
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
  DATABASE_WS_PROXY: optional,
  UPSTASH_REDIS_REST_URL: url.optional(),
  UPSTASH_REDIS_REST_TOKEN: optional,
  QSTASH_TOKEN: optional,
  QSTASH_URL: url.optional(),
  QSTASH_CURRENT_SIGNING_KEY: optional,
  QSTASH_NEXT_SIGNING_KEY: optional,
  PUBLIC_URL: url.optional(),
  JWT_SECRET: z.string().min(32, "must be at least 32 bytes").optional(),
  SESSION_TTL_SECONDS: seconds(604800),
  ADMIN_EMAILS: emailList.default([]),
  BCRYPT_COST: z.coerce.number().int().min(10, "must be at least 10").max(15).default(10),
  CORS_ORIGINS: list.default([]),
  RATE_LIMIT_LOGIN: rate.default({ limit: 10, windowSeconds: 900 }),
  /** Failed logins per account from all addresses together: a ceiling well above the per-pair one. */
  RATE_LIMIT_LOGIN_ACCOUNT: rate.default({ limit: 100, windowSeconds: 900 }),
  RATE_LIMIT_API: rate.default({ limit: 100, windowSeconds: 900 }),
  /** Password-reset requests per address asked about, and per caller's address. */
  RATE_LIMIT_PASSWORD_RESET: rate.default({ limit: 5, windowSeconds: 3600 }),
  /** Sockets one user may hold at once over every isolate; a connect past it is closed 4029. */
  WS_MAX_SOCKETS_PER_USER: z.coerce.number().int().min(1).max(100).default(10),
  RESERVATION_TTL_SECONDS: seconds(600),
  CALL_DURATION_SECONDS: seconds(180),
  /** Two members matched within this long are not paired again. */
  REMATCH_COOLDOWN_SECONDS: seconds(1800),
  /**
   * `required`: a member whose address is not confirmed may not be matched, sell, or send more
   * than a few connection requests, and signup mails the link. `off`: neither. Default: required
   * in production, off elsewhere (where mail goes to the dev outbox).
   */
  EMAIL_VERIFICATION: z.enum(["required", "off"]).optional(),
  PAYMENTS_PROVIDER: z.enum(["sandbox", "paystack", "phonepe"]).default("sandbox"),
  PAYMENTS_SANDBOX_SECRET: z.string().min(16).optional(),
  PAYSTACK_SECRET_KEY: optional,
  /** Paystack's API base URL (tests point it at a stand-in). */
  PAYSTACK_API_URL: url.optional(),
  PHONEPE_CLIENT_ID: optional,
  PHONEPE_CLIENT_SECRET: optional,
  PHONEPE_CLIENT_VERSION: optional,
  /** What the webhook is configured with on PhonePe's dashboard (it sends SHA256(user:pass)). */
  PHONEPE_WEBHOOK_USERNAME: optional,
  PHONEPE_WEBHOOK_PASSWORD: optional,
  /** PhonePe's sandbox (UAT) or production hosts. */
  PHONEPE_ENV: z.enum(["sandbox", "production"]).default("sandbox"),
  /** One base URL for every PhonePe call, laid out like its sandbox (tests point it at a stand-in). */
  PHONEPE_API_URL: url.optional(),
  RESEND_API_KEY: optional,
  MAIL_FROM: optional,
  /** Resend's API base URL (tests point it at a stand-in). */
  RESEND_API_URL: url.optional(),
  S3_ENDPOINT: url.optional(),
  S3_BUCKET: optional,
  S3_ACCESS_KEY_ID: optional,
  S3_SECRET_ACCESS_KEY: optional,
  S3_REGION: optional,
  /** Largest accepted upload, in bytes (5 MiB). */
  MEDIA_MAX_BYTES: z.coerce.number().int().min(1024).max(100 * 1024 * 1024).default(
    5 * 1024 * 1024,
  ),
  /** The largest video (MP4, WebM) accepted: videos have their own limit. */
  MEDIA_VIDEO_MAX_BYTES: z.coerce.number().int().min(1024).max(500 * 1024 * 1024).default(
    50 * 1024 * 1024,
  ),
  /** Media no post, profile or interview uses are removed by the daily sweep after this long. */
  MEDIA_ORPHAN_GRACE_SECONDS: seconds(86400),
  /** How long a signed URL of a message attachment works (5 minutes). */
  ATTACHMENT_URL_SECONDS: z.coerce.number().int().min(10).max(7 * 86400).default(300),
  /** Bytes of attachments a member may upload in any 24 hours (200 MiB). */
  ATTACHMENT_BYTES_PER_DAY: z.coerce.number().int().min(1024).default(200 * 1024 * 1024),
});

type Parsed = z.infer<typeof schema>;

export type Config =
  & Omit<
    Parsed,
    "PUBLIC_URL" | "JWT_SECRET" | "PAYMENTS_SANDBOX_SECRET" | "EMAIL_VERIFICATION"
  >
  & {
    PUBLIC_URL: string;
    EMAIL_VERIFICATION: "required" | "off";
    JWT_SECRET: string;
    PAYMENTS_SANDBOX_SECRET: string;
    /** True when APP_ENV=production. */
    production: boolean;
  };

/** A configuration mistake; its message is one line naming the variable. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Variables that only make sense together. */
const GROUPS: string[][] = [
  ["UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN"],
  ["QSTASH_TOKEN", "QSTASH_CURRENT_SIGNING_KEY", "QSTASH_NEXT_SIGNING_KEY"],
  ["S3_BUCKET", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"],
];

/**
 * Parses an environment. Secrets missing outside production are taken from `generated`
 * (main.ts persists them under DATA_DIR; tests pass fresh ones).
 */
export function parseConfig(
  env: Record<string, string | undefined>,
  generated: () => { JWT_SECRET: string; PAYMENTS_SANDBOX_SECRET: string } = randomSecrets,
): Config {
  const present = Object.fromEntries(
    Object.entries(env).filter(([, value]) => value !== undefined && value !== ""),
  );
  const result = schema.safeParse(present);
  if (!result.success) {
    const issue = result.error.issues[0];
    const name = String(issue.path[0] ?? "environment");
    throw new ConfigError(`${name}: ${issue.message} (got ${JSON.stringify(present[name])})`);
  }
  const parsed = result.data;
  const production = parsed.APP_ENV === "production";
  for (const group of GROUPS) {
    const set = group.filter((name) => present[name] !== undefined);
    if (set.length > 0 && set.length < group.length) {
      const missing = group.filter((name) => present[name] === undefined);
      throw new ConfigError(`${missing.join(", ")}: required together with ${set.join(", ")}`);
    }
  }
  if (production && !parsed.JWT_SECRET) {
    throw new ConfigError("JWT_SECRET: required when APP_ENV=production (at least 32 bytes)");
  }
  if (production && parsed.PAYMENTS_PROVIDER === "sandbox" && !parsed.PAYMENTS_SANDBOX_SECRET) {
    throw new ConfigError("PAYMENTS_SANDBOX_SECRET: required when APP_ENV=production");
  }
  if (present.DENO_DEPLOYMENT_ID && !parsed.QSTASH_TOKEN) {
    throw new ConfigError(
      "QSTASH_TOKEN: required on Deno Deploy, which has no KV queues " +
        "(set it with QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY)",
    );
  }
  if (/^https?:\/\//.test(parsed.DENO_KV_PATH ?? "") && !parsed.QSTASH_TOKEN) {
    throw new ConfigError(
      "QSTASH_TOKEN: required with a remote DENO_KV_PATH: KV Connect carries no KV queues " +
        "(set it with QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY)",
    );
  }
  if (present.DENO_DEPLOYMENT_ID && !parsed.S3_BUCKET) {
    throw new ConfigError(
      "S3_BUCKET: required on Deno Deploy, which has no writable disk for uploaded media " +
        "(set it with S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY and, outside AWS, S3_ENDPOINT)",
    );
  }
  if (parsed.RESEND_API_KEY && !parsed.MAIL_FROM) {
    throw new ConfigError(
      "MAIL_FROM: required with RESEND_API_KEY (e.g. Convene <hi@example.com>)",
    );
  }
  const s3Extra = ["S3_ENDPOINT", "S3_REGION"].filter((name) => present[name] !== undefined);
  if (s3Extra.length > 0 && !parsed.S3_BUCKET) {
    throw new ConfigError(
      `S3_BUCKET: required with ${
        s3Extra.join(", ")
      } (with S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY)`,
    );
  }
  if (parsed.PAYMENTS_PROVIDER === "paystack" && !parsed.PAYSTACK_SECRET_KEY) {
    throw new ConfigError("PAYSTACK_SECRET_KEY: required when PAYMENTS_PROVIDER=paystack");
  }
  if (parsed.PAYMENTS_PROVIDER === "phonepe") {
    const missing = PHONEPE_VARIABLES.filter((name) => !parsed[name]);
    if (missing.length > 0) {
      throw new ConfigError(`${missing.join(", ")}: required when PAYMENTS_PROVIDER=phonepe`);
    }
  }
  const fallback = parsed.JWT_SECRET && parsed.PAYMENTS_SANDBOX_SECRET ? null : generated();
  return {
    ...parsed,
    production,
    EMAIL_VERIFICATION: parsed.EMAIL_VERIFICATION ?? (production ? "required" : "off"),
    PUBLIC_URL: (parsed.PUBLIC_URL ?? `http://localhost:${parsed.PORT}`).replace(/\/+$/, ""),
    JWT_SECRET: parsed.JWT_SECRET ?? fallback!.JWT_SECRET,
    PAYMENTS_SANDBOX_SECRET: parsed.PAYMENTS_SANDBOX_SECRET ?? fallback!.PAYMENTS_SANDBOX_SECRET,
  };
}

function randomSecrets() {
  return { JWT_SECRET: randomSecret(), PAYMENTS_SANDBOX_SECRET: randomSecret() };
}

export function randomSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/**
 * Reads the process environment; in development, secrets that are not set are generated once
 * into `$DATA_DIR/secrets.json` so sessions survive restarts.
 */
export async function loadConfig(
  env: Record<string, string | undefined> = Deno.env.toObject(),
): Promise<Config> {
  const dataDir = env.DATA_DIR || ".data";
  const file = `${dataDir}/secrets.json`;
  let stored: { JWT_SECRET: string; PAYMENTS_SANDBOX_SECRET: string } | null = null;
  try {
    stored = JSON.parse(await Deno.readTextFile(file));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  let created: ReturnType<typeof randomSecrets> | null = null;
  const config = parseConfig(env, () => stored ?? (created = randomSecrets()));
  if (!created) return config;
  // Several isolates (deno serve --parallel) start at once and each may generate secrets: the first
  // to put its file in place wins, and the others use its secrets, or their tokens would be refused
  // by every isolate but the one that issued them. A hard link is placed whole or not at all.
  await Deno.mkdir(dataDir, { recursive: true });
  const draft = `${file}.${crypto.randomUUID()}`;
  await Deno.writeTextFile(draft, JSON.stringify(created), { mode: 0o600 });
  try {
    await Deno.link(draft, file);
    return config;
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    return await loadConfig(env);
  } finally {
    await Deno.remove(draft);
  }
}
