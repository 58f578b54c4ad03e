// Operations (admins): live figures of the isolate that answers, with small charts over the last
// five minutes, refreshed every few seconds from GET /api/admin/operations.
/// <reference lib="dom" />
import { useEffect, useState } from "preact/hooks";
import { api, explain, ok } from "./session.ts";

type Operations = Awaited<ReturnType<typeof load>>;
const load = () => ok(api.api.admin.operations.$get());

/** How often the page asks again (ms). */
const REFRESH_MS = 5_000;

export function OperationsPage() {
  const [figures, setFigures] = useState<Operations | null>(null);
  const [problem, setProblem] = useState("");
  useEffect(() => {
    let stopped = false;
    const refresh = () =>
      load().then((answer) => {
        if (!stopped) (setFigures(answer), setProblem(""));
      }, (error) => !stopped && setProblem(explain(error)));
    refresh();
    const timer = setInterval(refresh, REFRESH_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, []);
  if (!figures) {
    return (
      <section aria-labelledby="ops-title">
        <h1 id="ops-title">Operations</h1>
        <p role={problem ? "alert" : "status"} class={problem ? "error" : ""}>
          {problem || "Loading…"}
        </p>
      </section>
    );
  }
  const { series, current } = figures;
  const last = <T,>(values: T[]) => values[values.length - 1];
  const ms = (value: number | null) => value === null ? "–" : `${value} ms`;
  const rate = (value: number) => `${value.toFixed(value < 10 ? 1 : 0)}/s`;
  const counted = (value: number) => `${value}${value >= current.countedUpTo ? "+" : ""}`;
  return (
    <section aria-labelledby="ops-title">
      <h1 id="ops-title">Operations</h1>
      <p class="meta">
        Figures of the server isolate that answered, over the last {figures.windowSeconds / 60}{" "}
        minutes in steps of {figures.stepSeconds}{" "}
        s; other isolates keep their own. The outbox and dead letters are counted over all of them.
        {problem && <span role="alert" class="error">{problem}</span>}
      </p>
      <div class="figures">
        <Figure label="Active sockets" value={String(current.sockets)} series={series.sockets} />
        <Figure
          label="Messages per second"
          value={rate(last(series.messagesPerSecond))}
          series={series.messagesPerSecond}
        />
        <Figure
          label="Message latency, p95"
          value={ms(last(series.messageLatencyP95.filter((value) => value !== null)) ?? null)}
          series={series.messageLatencyP95}
        />
        <Figure
          label="Feed, p95"
          value={ms(last(series.feedP95.filter((value) => value !== null)) ?? null)}
          series={series.feedP95}
        />
        <Figure
          label="Requests per second"
          value={rate(last(series.requestsPerSecond))}
          series={series.requestsPerSecond}
        />
        <Figure
          label="5xx per second"
          value={rate(last(series.errorsPerSecond))}
          series={series.errorsPerSecond}
        />
        <Figure
          label="Outbox backlog"
          value={`${counted(current.outboxBacklog)}${
            current.oldestOutboxAgeSeconds === null
              ? ""
              : `, oldest ${current.oldestOutboxAgeSeconds} s`
          }`}
        />
        <Figure label="Dead letters" value={counted(current.deadLetters)} link="#/admin" />
      </div>
    </section>
  );
}

function Figure(
  props: { label: string; value: string; series?: (number | null)[]; link?: string },
) {
  return (
    <figure class="card figure" data-testid="figure" aria-label={props.label}>
      <figcaption>{props.label}</figcaption>
      <strong data-testid="figure-value">
        {props.link ? <a href={props.link}>{props.value}</a> : props.value}
      </strong>
      {props.series && <Sparkline label={props.label} values={props.series} />}
    </figure>
  );
}

/** A small line chart of `values` (gaps where a step had none), scaled to its own maximum. */
function Sparkline(props: { label: string; values: (number | null)[] }) {
  const width = 240;
  const height = 48;
  const known = props.values.filter((value): value is number => value !== null);
  const top = Math.max(1, ...known);
  const step = width / Math.max(1, props.values.length - 1);
  let path = "";
  let pen = false;
  let lastPoint: [string, string] | null = null;
  props.values.forEach((value, i) => {
    if (value === null) return void (pen = false);
    const x = (i * step).toFixed(1);
    const y = (height - 2 - (value / top) * (height - 4)).toFixed(1);
    path += `${pen ? "L" : "M"}${x} ${y} `;
    pen = true;
    lastPoint = [x, y];
  });
  // The latest value as a dot, so a lone point (one step with data) shows too.
  const dot = lastPoint as [string, string] | null;
  return (
    <svg
      class="sparkline"
      viewBox={`0 0 ${width} ${height}`}
      role="img"
      aria-label={`${props.label} over the last minutes, up to ${top}`}
    >
      <path d={path.trim()} fill="none" stroke="currentColor" stroke-width="1.5" />
      {dot && <circle cx={dot[0]} cy={dot[1]} r="2.5" fill="currentColor" />}
    </svg>
  );
}
