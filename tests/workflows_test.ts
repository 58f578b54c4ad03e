// The GitHub workflows users run: CI makes the checks .ci/run makes, with Postgres and Redis
// beside the tests, and Deploy ships main to Deno Deploy only after CI passed on that commit.
// Every `deno task` they call exists, and they use the README's commands.
import assert from "node:assert/strict";
// A test-only package: locked in tests/deno.lock, kept out of the server's deno.lock.
// deno-lint-ignore no-import-prefix
import { parse } from "npm:yaml@2.9.1";

const root = new URL("../", import.meta.url);
const read = (path: string) => Deno.readTextFile(new URL(path, root));

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  env?: Record<string, string>;
  with?: Record<string, unknown>;
}
interface Job {
  if?: string;
  services?: Record<string, { image: string; ports?: string[] }>;
  env?: Record<string, string>;
  steps: Step[];
}
interface Workflow {
  name: string;
  on: Record<string, unknown>;
  jobs: Record<string, Job>;
}

const workflow = async (file: string) => parse(await read(`.github/workflows/${file}`)) as Workflow;
const runs = (flow: Workflow) =>
  Object.values(flow.jobs).flatMap((job) => job.steps.flatMap((step) => step.run ?? []));

/** The README's first two commands, from its "Run it" block. */
async function readmeCommands(): Promise<string[]> {
  const readme = await read("README.md");
  const block = /## Run it\s+```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? "";
  return block.split("\n").filter(Boolean).map((line) => line.replace(/\s+#.*$/, "").trim());
}

Deno.test("[workflows] every deno task a workflow or .ci/run calls is defined in deno.json", async () => {
  const { tasks } = JSON.parse(await read("deno.json")) as { tasks: Record<string, string> };
  const scripts = [
    ...runs(await workflow("ci.yml")),
    ...runs(await workflow("deploy.yml")),
    await read(".ci/run"),
  ].join("\n");
  const called = [...scripts.matchAll(/deno(?:@[\d.]+)?"? task (?:--\S+ )*([\w:-]+)/g)]
    .map((match) => match[1]);
  assert.ok(called.includes("test") && called.includes("check"), `found: ${called}`);
  for (const task of called) assert.ok(task in tasks, `deno task ${task} is not in deno.json`);
});

Deno.test("[workflows] CI runs .ci/run's checks and the README's test command against Postgres and Redis", async () => {
  const ci = await workflow("ci.yml");
  assert.ok("push" in ci.on && "pull_request" in ci.on, "on every push and pull request");
  const [job] = Object.values(ci.jobs);
  const commands = runs(ci);
  const [dev, test] = await readmeCommands();
  assert.equal(dev, "npx -y deno@2.9 task dev");
  assert.ok(commands.includes(test), `the README's test command (${test}) is a step`);
  for (
    const check of [
      "npx -y deno@2.9 install --frozen",
      "npx -y deno@2.9 fmt --check",
      "npx -y deno@2.9 lint",
      "npx -y deno@2.9 task check --frozen",
    ]
  ) {
    assert.ok(commands.includes(check), `${check} is a step`);
    assert.ok((await read(".ci/run")).includes(check.replace("npx -y deno@2.9", '"$DENO"')));
  }
  // The test step comes after the checks, as in .ci/run.
  assert.equal(commands.at(-1), test);

  const services = job.services ?? {};
  assert.match(services.postgres.image, /^postgres:\d+/);
  assert.deepEqual(services.postgres.ports, ["5432:5432"]);
  assert.match(services.redis.image, /^redis:\d+/);
  assert.deepEqual(services.redis.ports, ["6379:6379"]);
  assert.equal(job.env?.TEST_DATABASE_URL, "postgres://postgres@127.0.0.1:5432/postgres");
  assert.equal(job.env?.TEST_REDIS_URL, "redis://127.0.0.1:6379");
});

Deno.test("[workflows] Deploy ships main with deno deploy, only once CI passed on a push", async () => {
  const deploy = await workflow("deploy.yml");
  const ci = await workflow("ci.yml");
  const trigger = deploy.on.workflow_run as {
    workflows: string[];
    types: string[];
    branches: string[];
  };
  assert.deepEqual(trigger.workflows, [ci.name]);
  assert.deepEqual(trigger.types, ["completed"]);
  assert.deepEqual(trigger.branches, ["main"]);
  assert.equal(Object.keys(deploy.on).length, 1, "no other trigger");

  const [job] = Object.values(deploy.jobs);
  assert.match(job.if ?? "", /github\.event\.workflow_run\.conclusion == 'success'/);
  assert.match(job.if ?? "", /github\.event\.workflow_run\.event == 'push'/);
  const checkout = job.steps.find((step) => step.uses?.startsWith("actions/checkout"));
  assert.equal(
    checkout?.with?.ref,
    "${{ github.event.workflow_run.head_sha }}",
    "the tested commit",
  );

  const step = job.steps.find((candidate) => /\bdeno@2\.9 deploy\b/.test(candidate.run ?? ""));
  assert.ok(step, "a step runs deno deploy");
  assert.match(step.run!, /--prod\b/);
  assert.match(step.run!, /--org "\$DENO_DEPLOY_ORG" --app "\$DENO_DEPLOY_APP"/);
  assert.equal(step.env?.DENO_DEPLOY_TOKEN, "${{ secrets.DENO_DEPLOY_TOKEN }}");
  const text = await read(".github/workflows/deploy.yml");
  assert.doesNotMatch(text.replace(/^#.*$/gm, ""), /deployctl/, "the retired tool is not used");
});

Deno.test("[workflows] the README and docs stand alone: every link and relative path they give resolves inside the repository", async () => {
  const files = [
    "README.md",
    ...[...Deno.readDirSync(new URL("docs/", root))]
      .filter((entry) => entry.name.endsWith(".md")).map((entry) => `docs/${entry.name}`),
  ];
  const broken: string[] = [];
  for (const file of files) {
    const text = await read(file);
    // Markdown links and images: [text](target), without a scheme (those leave on purpose).
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith("#")) continue;
      const url = new URL(target.split("#")[0], new URL(file, root));
      const inside = url.href.startsWith(root.href);
      const exists = inside && await Deno.stat(url).then(() => true, () => false);
      if (!exists) broken.push(`${file}: ${target}`);
    }
    // Nor in prose: any relative path that climbs (`../x`) must land inside the clone, which
    // has nothing beside it.
    for (const [path] of text.matchAll(/(?:\.\.\/)+[\w.-]+/g)) {
      if (!new URL(path, new URL(file, root)).href.startsWith(root.href)) {
        broken.push(`${file}: ${path} is outside the repository`);
      }
    }
  }
  assert.deepEqual(broken, []);
});
