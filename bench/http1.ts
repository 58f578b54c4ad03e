// A minimal HTTP/1.1 keep-alive client for load generation: one request at a time per connection,
// on a raw TCP stream. `fetch` spent a whole core of the load process on 64 loops of reservations
// while the one-isolate server used half of one; this costs a fraction of that, so the server is
// what gets measured.

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const HEADER_END = encoder.encode("\r\n\r\n");

export interface Http1Answer {
  status: number;
  body: string;
}

export class Http1Connection {
  #buffer = new Uint8Array(0);

  private constructor(readonly connection: Deno.TcpConn, readonly host: string) {}

  static async open(url: string): Promise<Http1Connection> {
    const { hostname, port } = new URL(url);
    const connection = await Deno.connect({ hostname, port: Number(port) });
    connection.setNoDelay(true);
    return new Http1Connection(connection, `${hostname}:${port}`);
  }

  async request(
    method: string,
    path: string,
    headers: Record<string, string> = {},
    body?: string,
  ): Promise<Http1Answer> {
    const payload = body === undefined ? new Uint8Array(0) : encoder.encode(body);
    let head = `${method} ${path} HTTP/1.1\r\nhost: ${this.host}\r\n`;
    for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
    head += `content-length: ${payload.length}\r\n\r\n`;
    const request = new Uint8Array(head.length * 3 + payload.length);
    const { written } = encoder.encodeInto(head, request);
    request.set(payload, written);
    await writeAll(this.connection, request.subarray(0, written! + payload.length));
    return await this.#response();
  }

  close() {
    try {
      this.connection.close();
    } catch { /* closed */ }
  }

  async #response(): Promise<Http1Answer> {
    let end: number;
    while ((end = indexOf(this.#buffer, HEADER_END)) < 0) await this.#fill();
    const head = decoder.decode(this.#buffer.subarray(0, end));
    this.#buffer = this.#buffer.subarray(end + 4);
    const status = Number(head.slice(9, 12));
    const lower = head.toLowerCase();
    const length = /\r\ncontent-length: *(\d+)/.exec(lower)?.[1];
    if (length !== undefined) return { status, body: decoder.decode(await this.#take(+length)) };
    if (!/\r\ntransfer-encoding: *chunked/.test(lower)) return { status, body: "" };
    const parts: Uint8Array[] = [];
    for (;;) {
      let lineEnd: number;
      while ((lineEnd = indexOf(this.#buffer, HEADER_END.subarray(0, 2))) < 0) await this.#fill();
      const size = parseInt(decoder.decode(this.#buffer.subarray(0, lineEnd)), 16);
      this.#buffer = this.#buffer.subarray(lineEnd + 2);
      const chunk = await this.#take(size + 2); // the chunk and its CRLF
      if (size === 0) break;
      parts.push(chunk.subarray(0, size));
    }
    return { status, body: parts.map((part) => decoder.decode(part)).join("") };
  }

  async #take(count: number): Promise<Uint8Array> {
    while (this.#buffer.length < count) await this.#fill();
    const taken = this.#buffer.slice(0, count);
    this.#buffer = this.#buffer.subarray(count);
    return taken;
  }

  async #fill() {
    const chunk = new Uint8Array(16 * 1024);
    const read = await this.connection.read(chunk);
    if (read === null) throw new Error("the server closed the connection");
    const next = new Uint8Array(this.#buffer.length + read);
    next.set(this.#buffer);
    next.set(chunk.subarray(0, read), this.#buffer.length);
    this.#buffer = next;
  }
}

async function writeAll(connection: Deno.TcpConn, bytes: Uint8Array) {
  for (let offset = 0; offset < bytes.length;) {
    offset += await connection.write(bytes.subarray(offset));
  }
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i <= haystack.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
