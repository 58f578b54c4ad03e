// The buyers of the flash-sale benchmark: `load` runs BUYERS loops of ATTEMPTS tries; bench/sales.ts
// uses it in its own process for the KV-alone and Postgres cases, and runs this file as a process
// of its own for the HTTP case (config as JSON on stdin, result as JSON on stdout), so the server
// measured has its core to itself instead of sharing it with 500 fetch clients.

export interface Load {
  perSecond: number;
  /** Latencies (ms) of the tries that took a unit, sorted. */
  latencies: number[];
  sold: number;
}

/** `buyers` loops of `attempts` tries; `attempt` resolves true when it took a unit. */
export async function load(
  buyers: number,
  attempts: number,
  attempt: (buyer: number, round: number) => Promise<boolean>,
): Promise<Load> {
  const latencies: number[] = [];
  const started = performance.now();
  await Promise.all(Array.from({ length: buyers }, async (_, buyer) => {
    for (let round = 0; round < attempts; round++) {
      const at = performance.now();
      if (await attempt(buyer, round)) latencies.push(performance.now() - at);
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { perSecond: latencies.length / seconds, latencies, sold: latencies.length };
}

export interface HttpBuyers {
  /** `POST` URL of the sale's reservations. */
  url: string;
  productId: string;
  /** One buyer per token. */
  tokens: string[];
  attempts: number;
}

/** Each buyer reserves one unit per try over HTTP; anything but 201 or sold-out is an error. */
export async function buyOverHttp(config: HttpBuyers): Promise<Load & { refused: number[] }> {
  const refused: number[] = [];
  const result = await load(config.tokens.length, config.attempts, async (buyer) => {
    const response = await fetch(config.url, {
      method: "POST",
      headers: {
        authorization: `Bearer ${config.tokens[buyer]}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ productId: config.productId, quantity: 1 }),
    });
    const body = await response.json();
    if (response.status !== 201 && body.type !== "/problems/sold-out") {
      refused.push(response.status);
    }
    return response.status === 201;
  });
  return { ...result, refused };
}

if (import.meta.main) {
  const config: HttpBuyers = JSON.parse(await new Response(Deno.stdin.readable).text());
  console.log(JSON.stringify(await buyOverHttp(config)));
}
