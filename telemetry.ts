// OpenTelemetry: Convene's spans and instruments, through `@opentelemetry/api`. Deno's built-in
// OpenTelemetry (OTEL_DENO=true, with the standard OTEL_EXPORTER_OTLP_* variables; Deno Deploy has
// its own collector) registers the providers and exports them with its own HTTP and fetch spans;
// without it every call here is the API's no-op, which costs nothing measurable. docs/observability.md
// lists every span and instrument.
import {
  type Attributes,
  context,
  type Link,
  metrics,
  type Span,
  type SpanContext,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";

/** deps.ts's Logger (named here: a leaf imports no adapter's types). */
type Logger = (record: Record<string, unknown>) => void;

const tracer = trace.getTracer("convene");
const meter = metrics.getMeter("convene");

/** Runs `work` in a new active span (a child of the active one, if any); ends it either way. */
export function inSpan<T>(
  name: string,
  attributes: Attributes,
  work: (span: Span) => Promise<T>,
  links?: Link[],
): Promise<T> {
  // Under a span its sampler dropped, a child would be dropped too (parent-based sampling, the
  // default): the work runs in the parent's unsampled span, without making one that is not kept.
  // (Deno's unsampled spans say they are recording: the trace flags tell.)
  const parent = trace.getActiveSpan();
  if (parent && (parent.spanContext().traceFlags & 1) === 0) return work(parent);
  return tracer.startActiveSpan(name, { attributes, links }, async (span) => {
    try {
      return await work(span);
    } catch (error) {
      span.recordException(error instanceof Error ? error : String(error));
      span.setStatus({ code: SpanStatusCode.ERROR, message: String(error) });
      throw error;
    } finally {
      span.end();
    }
  });
}

/**
 * Runs `work` in a new span that starts a trace of its own, whatever is active, linked to the span
 * `from` names (a socket's frame: its own trace, linked to the request that opened the socket).
 */
export function inRootSpan<T>(
  name: string,
  attributes: Attributes,
  work: (span: Span) => Promise<T>,
  from?: string,
): Promise<T> {
  const link = linkTo(from);
  return context.with(
    trace.deleteSpan(context.active()),
    () => inSpan(name, attributes, work, link ? [link] : undefined),
  );
}

/**
 * Runs `work` in a new active span whose parent is the span a `traceparent` names (a job's run
 * joins the trace of the request that enqueued it); a root span when there is none.
 */
export function inSpanUnder<T>(
  parent: string | undefined,
  name: string,
  attributes: Attributes,
  work: (span: Span) => Promise<T>,
): Promise<T> {
  return context.with(contextUnder(parent), () => inSpan(name, attributes, work));
}

/**
 * A span for something instant (an event handed to a socket): a child of the span `parent` names
 * when given (the decision that caused it, whichever isolate or turn delivers it), else of the
 * active one.
 */
export function pointSpan(name: string, attributes: Attributes, parent?: string) {
  const link = linkTo(parent);
  // Its cause's trace was not sampled: a parent-based sampler would drop this span, so it is not
  // made (a delivery per message is telemetry's most frequent span).
  if (link && (link.context.traceFlags & 1) === 0) return;
  const under = link ? trace.setSpanContext(context.active(), link.context) : context.active();
  tracer.startSpan(name, { attributes }, under).end();
}

/** The active context, with the span a `traceparent` names as its parent when there is one. */
function contextUnder(parent: string | undefined) {
  const link = linkTo(parent);
  return link ? trace.setSpanContext(context.active(), link.context) : context.active();
}

/** The statement's text a `db.query` span keeps, at most (never its parameters). */
const STATEMENT_CHARS = 500;

/** Runs one Postgres statement in a `db.query` span: its text, never its parameters' values. */
export function queried<T>(system: string, text: string, run: () => Promise<T>): Promise<T> {
  return inSpan(
    "db.query",
    { "db.system.name": system, "db.query.text": text.slice(0, STATEMENT_CHARS) },
    run,
  );
}

/** The active span's context, when there is a real one (a traceparent to carry along). */
export function activeContext(): SpanContext | undefined {
  const context = trace.getActiveSpan()?.spanContext();
  return context && trace.isSpanContextValid(context) ? context : undefined;
}

/** The active span, to name or annotate (a no-op span when telemetry is off). */
export function activeSpan(): Span | undefined {
  return trace.getActiveSpan();
}

/** W3C `traceparent` of the active span, or undefined: what a job or record carries along. */
export function traceparent(): string | undefined {
  const context = activeContext();
  if (!context) return undefined;
  const flags = (context.traceFlags & 1) ? "01" : "00";
  return `00-${context.traceId}-${context.spanId}-${flags}`;
}

/** A link to the span a `traceparent` names (links tie a batch's span to the requests it serves). */
export function linkTo(parent: string | undefined): Link | undefined {
  const match = parent?.match(/^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/);
  if (!match) return undefined;
  return {
    context: { traceId: match[1], spanId: match[2], traceFlags: parseInt(match[3], 16) },
  };
}

/**
 * `log` whose records carry `trace_id` and `span_id` whenever they are written inside a span:
 * one JSON object a line still, now joinable with the traces.
 */
export function tracedLogger(log: Logger): Logger {
  return (record) => {
    const context = activeContext();
    log(context ? { ...record, trace_id: context.traceId, span_id: context.spanId } : record);
  };
}

/** Convene's instruments, named and described the OpenTelemetry way. */
export const instruments = {
  // Deno's own `http.server.request.duration` has no route: this one is by route template.
  httpDuration: meter.createHistogram("convene.http.request.duration", {
    description: "Duration of HTTP requests, by route template (http.route), method and status.",
    unit: "s",
  }),
  socketConnects: meter.createCounter("convene.ws.connects", {
    description: "WebSocket connections accepted.",
  }),
  activeSockets: meter.createUpDownCounter("convene.ws.active", {
    description: "WebSocket connections open on this isolate.",
  }),
  frames: meter.createCounter("convene.ws.frames", {
    description: "Client frames handled, by type and outcome.",
  }),
  messageLatency: meter.createHistogram("convene.chat.delivery.latency", {
    description: "From a chat message's commit to its delivery to a socket of the recipient.",
    unit: "ms",
  }),
  decisions: meter.createCounter("convene.kv.decisions", {
    description: "KV decisions committed or lost to a concurrent change, by operation.",
  }),
  lockedRetries: meter.createCounter("convene.kv.commit.locked_retries", {
    description: "KV commits retried because another isolate held SQLite's write lock.",
  }),
  busyAnswers: meter.createCounter("convene.busy_answers", {
    description: "Requests answered 503 busy (a store or hot key stayed contended).",
  }),
  historyBatches: meter.createHistogram("convene.history.batch.duration", {
    description: "Time the history writer took to apply one batch of outbox records.",
    unit: "ms",
  }),
  historyLag: meter.createHistogram("convene.history.lag", {
    description: "From a record's commit to its history row being written.",
    unit: "ms",
  }),
  feedLatency: meter.createHistogram("convene.feed.latency", {
    description: "Time to answer a feed page, by whether the cache had it (convene.cache).",
    unit: "ms",
  }),
  payments: meter.createCounter("convene.payments", {
    description:
      "Payment webhooks applied, by provider and outcome (paid, refunded, cancelled, …).",
  }),
  emails: meter.createCounter("convene.emails", {
    description: "Emails handed to the mail provider, by outcome (sent, failed).",
  }),
  jobRuns: meter.createCounter("convene.jobs.runs", {
    description:
      "Background job deliveries, by job and outcome (done, duplicate, postponed, dead-lettered, retry).",
  }),
  // Summed over isolates: enqueued in one, run in another. Delayed jobs count until they run.
  jobsQueued: meter.createUpDownCounter("convene.jobs.queued", {
    description: "Jobs enqueued and not yet run (delayed ones included), by job.",
  }),
};

/** How long this isolate keeps its recent figures (s), and the operations page's step (s). */
export const RECENT_SECONDS = 300;
export const RECENT_STEP_SECONDS = 5;
/** Latency samples kept per second and figure, at most (enough for a p95). */
const SAMPLES_PER_SECOND = 500;

interface Second {
  counts: Map<string, number>;
  samples: Map<string, number[]>;
  gauges: Map<string, number>;
}

/**
 * This isolate's figures of the last RECENT_SECONDS, per second, for the operations page: what
 * OpenTelemetry exports cannot be read back, so the few figures the page charts are kept here too.
 */
export class RecentFigures {
  #seconds = new Map<number, Second>();
  #gauges = new Map<string, number>();
  /** Each gauge's value as of the oldest second kept (what the window's first steps show). */
  #baseline = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  #second(): Second {
    const at = Math.floor(this.now() / 1000);
    let second = this.#seconds.get(at);
    if (!second) {
      second = { counts: new Map(), samples: new Map(), gauges: new Map() };
      this.#seconds.set(at, second);
      for (const [old, gone] of this.#seconds) {
        if (old > at - RECENT_SECONDS) break;
        for (const [name, value] of gone.gauges) this.#baseline.set(name, value);
        this.#seconds.delete(old);
      }
    }
    return second;
  }

  count(name: string, value = 1) {
    const { counts } = this.#second();
    counts.set(name, (counts.get(name) ?? 0) + value);
  }

  /** One observation (a latency, ms): counted, and kept for percentiles. */
  sample(name: string, value: number) {
    this.count(name);
    const { samples } = this.#second();
    const kept = samples.get(name) ?? [];
    if (kept.length < SAMPLES_PER_SECOND) kept.push(value);
    samples.set(name, kept);
  }

  /** A level (sockets open): its value now, carried forward until it changes. */
  gauge(name: string, value: number) {
    this.#gauges.set(name, value);
    this.#second().gauges.set(name, value);
  }

  /**
   * The last RECENT_SECONDS in steps of RECENT_STEP_SECONDS, oldest first: per step, each count's
   * rate per second, each sample's p95, each gauge's last value.
   */
  series(): {
    at: string[];
    rates: Record<string, number[]>;
    p95: Record<string, (number | null)[]>;
    gauges: Record<string, number[]>;
  } {
    const end = Math.floor(this.now() / 1000) + 1;
    const steps = RECENT_SECONDS / RECENT_STEP_SECONDS;
    const at: string[] = [];
    const rates: Record<string, number[]> = {};
    const p95: Record<string, (number | null)[]> = {};
    const gauges: Record<string, number[]> = {};
    const names = { counts: new Set<string>(), samples: new Set<string>() };
    for (const second of this.#seconds.values()) {
      for (const name of second.counts.keys()) names.counts.add(name);
      for (const name of second.samples.keys()) names.samples.add(name);
    }
    for (const name of names.counts) rates[name] = [];
    for (const name of names.samples) p95[name] = [];
    const level = new Map(this.#baseline);
    for (const name of this.#gauges.keys()) gauges[name] = [];
    for (let step = 0; step < steps; step++) {
      const from = end - RECENT_SECONDS + step * RECENT_STEP_SECONDS;
      at.push(new Date((from + RECENT_STEP_SECONDS) * 1000).toISOString());
      const counts = new Map<string, number>();
      const samples = new Map<string, number[]>();
      for (let t = from; t < from + RECENT_STEP_SECONDS; t++) {
        const second = this.#seconds.get(t);
        if (!second) continue;
        for (const [name, value] of second.counts) {
          counts.set(name, (counts.get(name) ?? 0) + value);
        }
        for (const [name, values] of second.samples) {
          samples.set(name, [...samples.get(name) ?? [], ...values]);
        }
        for (const [name, value] of second.gauges) level.set(name, value);
      }
      for (const name of names.counts) {
        rates[name].push((counts.get(name) ?? 0) / RECENT_STEP_SECONDS);
      }
      for (const name of names.samples) p95[name].push(percentile95(samples.get(name)));
      for (const name of this.#gauges.keys()) gauges[name].push(level.get(name) ?? 0);
    }
    return { at, rates, p95, gauges };
  }

  /** A gauge's value now. */
  level(name: string): number {
    return this.#gauges.get(name) ?? 0;
  }
}

function percentile95(values: number[] | undefined): number | null {
  if (!values || values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(0.95 * sorted.length))] * 10) /
    10;
}

/** This isolate's recent figures (one per isolate: what the operations page shows). */
export const recent = new RecentFigures();

/**
 * Observes a history writer (kv/outbox.ts's Outbox): its records not yet written, and whether it
 * last reached the database. Exported with the other metrics; a no-op with telemetry off.
 */
export function observeHistoryWriter(writer: { buffered: number; outage: unknown }) {
  meter.createObservableGauge("convene.history.buffered", {
    description: "Records this isolate's history writer holds, not yet written.",
  }).addCallback((result) => result.observe(writer.buffered));
  meter.createObservableGauge("convene.database.reachable", {
    description: "1 while the history writer reaches the database, 0 while it waits out an outage.",
  }).addCallback((result) => result.observe(writer.outage ? 0 : 1));
}

/** How often the store's backlog is read again for its gauges, at most (a read lists records). */
const BACKLOG_REFRESH_MS = 15_000;

/**
 * Gauges of what the whole store still holds (the same in every isolate: take the maximum, not the
 * sum): outbox records and their oldest's age, dead letters. `read` runs only while a collector
 * asks (never with telemetry off), at most every BACKLOG_REFRESH_MS; each export reports the last
 * read.
 */
export function observeStoreBacklog(
  read: () => Promise<
    { outboxRecords: number; oldestOutboxAgeSeconds: number | null; deadLetters: number }
  >,
) {
  let last: Awaited<ReturnType<typeof read>> | null = null;
  let readAt = -Infinity;
  let reading = false;
  const refresh = () => {
    if (reading || performance.now() - readAt < BACKLOG_REFRESH_MS) return;
    reading = true;
    read().then((value) => {
      last = value;
      readAt = performance.now();
    }).catch(() => {/* the store is unreachable: the last figures stand */}).finally(() => {
      reading = false;
    });
  };
  const gauge = (
    name: string,
    description: string,
    value: (backlog: NonNullable<typeof last>) => number | null,
    unit?: string,
  ) =>
    meter.createObservableGauge(name, { description, unit }).addCallback((result) => {
      refresh();
      const observed = last && value(last);
      if (observed !== null && observed !== undefined) result.observe(observed);
    });
  gauge(
    "convene.outbox.backlog",
    "Outbox records over every isolate not yet written to history (counted up to 1,000).",
    (backlog) => backlog.outboxRecords,
  );
  gauge(
    "convene.outbox.oldest_age",
    "Age of the oldest outbox record not yet written to history; absent when there is none.",
    (backlog) => backlog.oldestOutboxAgeSeconds,
    "s",
  );
  gauge(
    "convene.dead_letters",
    "Jobs and outbox records that failed every retry, awaiting an admin (counted up to 1,000).",
    (backlog) => backlog.deadLetters,
  );
}
