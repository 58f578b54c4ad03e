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
 * Runs `work` in a new active span whose parent is the span a `traceparent` names (a job's run
 * joins the trace of the request that enqueued it); a root span when there is none.
 */
export function inSpanUnder<T>(
  parent: string | undefined,
  name: string,
  attributes: Attributes,
  work: (span: Span) => Promise<T>,
): Promise<T> {
  const link = linkTo(parent);
  const base = link ? trace.setSpanContext(context.active(), link.context) : context.active();
  return context.with(base, () => inSpan(name, attributes, work));
}

/**
 * A span for something instant (an event handed to a socket): a child of the span `parent` names
 * when given (the decision that caused it, whichever isolate or turn delivers it), else of the
 * active one.
 */
export function pointSpan(name: string, attributes: Attributes, parent?: string) {
  const link = linkTo(parent);
  const base = link ? trace.setSpanContext(context.active(), link.context) : context.active();
  tracer.startSpan(name, { attributes }, base).end();
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
  jobRuns: meter.createCounter("convene.jobs.runs", {
    description: "Background job runs, by job and outcome (ok, retry, dead).",
  }),
};
