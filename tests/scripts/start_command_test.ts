import assert from "node:assert/strict";
import { compileArgs, unshippedFolders } from "../../scripts/compile.ts";
import { parseStartTask, PROJECT_ROOT, readStartCommand } from "../../scripts/start_command.ts";

const DENO_JSON = new URL("../../deno.json", import.meta.url);

const taskJson = (start: string) => JSON.stringify({ tasks: { start } });

Deno.test("parseStartTask() reads the real deno.json's start task", async (t) => {
  const { flags, entry } = parseStartTask(await Deno.readTextFile(DENO_JSON));

  await t.step("the entry point is main.ts", () => {
    assert.equal(entry, "main.ts");
  });

  await t.step("grants scoped env, read and write permissions and never prompts", () => {
    for (const prefix of ["--allow-env=", "--allow-read=", "--allow-write="]) {
      const flag = flags.find((f) => f.startsWith(prefix));
      assert.ok(flag, `missing ${prefix} in ${flags.join(" ")}`);
      assert.ok(flag.length > prefix.length, `${prefix} lists nothing`);
    }
    assert.ok(flags.includes("--no-prompt"));
  });

  await t.step("grants no run, ffi or blanket permission", () => {
    for (const flag of flags) {
      assert.ok(!/^--allow-(run|ffi|all)\b/.test(flag), `${flag} must not be granted`);
      assert.notEqual(flag, "-A");
      // An unscoped --allow-env/--allow-read/--allow-write would grant everything.
      assert.ok(!/^--allow-(env|read|write)$/.test(flag), `${flag} must be scoped`);
    }
  });

  await t.step("readStartCommand() gives the same answer", () => {
    assert.deepEqual(readStartCommand(), { flags, entry });
  });
});

Deno.test("parseStartTask() rejects a bad start task", async (t) => {
  const cases = [
    { name: "-A", json: taskJson("deno run -A main.ts"), error: /--flags|every permission/ },
    { name: "--allow-all", json: taskJson("deno run --allow-all main.ts"), error: /every/ },
    { name: "not deno run", json: taskJson("node main.js"), error: /deno run/ },
    { name: "no start task", json: JSON.stringify({ tasks: {} }), error: /no start task/ },
    {
      name: "a non-flag word before the entry",
      json: taskJson("deno run --allow-net extra main.ts"),
      error: /--flags/,
    },
  ];
  for (const { name, json, error } of cases) {
    await t.step(name, () => {
      assert.throws(() => parseStartTask(json), error);
    });
  }
});

Deno.test("parseStartTask() splits flags and entry on any whitespace", () => {
  assert.deepEqual(parseStartTask(taskJson("  deno  run\t--allow-net   --no-prompt app.ts ")), {
    flags: ["--allow-net", "--no-prompt"],
    entry: "app.ts",
  });
});

Deno.test("compileArgs() builds the binary with exactly the start task's permissions", async () => {
  const { flags, entry } = parseStartTask(await Deno.readTextFile(DENO_JSON));
  const args = compileArgs(flags, entry, "dist/service-desk-bot");
  assert.equal(args[0], "compile");
  assert.ok(args.includes("--frozen"));
  // Permissions, --ignore-env, and the unstable features the embedded stores need
  // (Deno KV, and PGlite's files and the migrations imported as bytes and text).
  for (const flag of flags) {
    assert.ok(args.includes(flag), `${flag} missing from ${args.join(" ")}`);
  }
  for (const flag of ["--unstable-kv", "--unstable-raw-imports", "--ignore-env"]) {
    assert.ok(args.includes(flag), `${flag} missing from ${args.join(" ")}`);
  }
  assert.deepEqual(args.slice(-3), ["--output", "dist/service-desk-bot", "main.ts"]);
  // Nothing that the start task does not grant.
  const granted = args.filter((arg) => arg.startsWith("--allow-"));
  assert.deepEqual(granted, flags.filter((f) => f.startsWith("--allow-")));
});

Deno.test("compileArgs() drops run-only flags and passes a target", () => {
  const args = compileArgs(
    ["--watch", "--allow-net", "--no-prompt"],
    "main.ts",
    "out/bot",
    "x86_64-unknown-linux-gnu",
  );
  assert.ok(!args.includes("--watch"));
  assert.deepEqual(args.slice(args.indexOf("--target"), args.indexOf("--target") + 2), [
    "--target",
    "x86_64-unknown-linux-gnu",
  ]);
  assert.deepEqual(args.slice(-3), ["--output", "out/bot", "main.ts"]);
});

Deno.test("unshippedFolders() finds the npm packages' test folders, which compile must leave out", () => {
  const folders = unshippedFolders(PROJECT_ROOT);
  // Deno 2.9.6's compile overflows its stack on this one (prom-client → tdigest → bintrees).
  assert.ok(
    folders.some((path) => /\/bintrees\/test$/.test(path)),
    `bintrees/test missing from ${folders.join(", ")}`,
  );
  assert.ok(folders.every((path) => path.startsWith("node_modules/.deno/")));
  const args = compileArgs(["--allow-net"], "main.ts", "out/bot", undefined, folders);
  assert.equal(args.filter((arg) => arg === "--exclude").length, folders.length);
});
