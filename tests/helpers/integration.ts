// Integration tests run against the real servers named by TEST_DATABASE_URL / TEST_REDIS_URL
// (set by .ci/run); without them they are registered as ignored, and their names say why.

export function integrationTest(
  variable: "TEST_DATABASE_URL" | "TEST_REDIS_URL",
  name: string,
  fn: (url: string, t: Deno.TestContext) => Promise<void>,
) {
  const url = Deno.env.get(variable);
  Deno.test({
    name: url ? name : `${name} (skipped: ${variable} is not set)`,
    ignore: !url,
    fn: (t) => fn(url!, t),
  });
}
