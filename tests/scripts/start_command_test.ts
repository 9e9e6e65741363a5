import assert from "node:assert/strict";
import { compileArgs, unshippedFolders } from "../../scripts/compile.ts";
import {
  parseStartTask,
  permissionFlags,
  type PermissionSet,
  PROJECT_ROOT,
  readStartCommand,
} from "../../scripts/start_command.ts";
import { ENV_NAMES } from "../../src/config.ts";

const DENO_JSON = new URL("../../deno.json", import.meta.url);
/** The folders the README's sandbox section lets the program read and write. */
const SANDBOX_FOLDERS = ["data", "backups", "logs"];
/** What the README's sandbox section lets the program learn about the system. */
const SANDBOX_SYS = ["hostname", "statfs"];

const taskJson = (start: string, permissions?: Record<string, unknown>) =>
  JSON.stringify({ tasks: { start }, ...(permissions ? { permissions } : {}) });

/** The flags in the code block of the README's "Sandbox" section, the env list filled in. */
async function readmeSandboxFlags(): Promise<string[]> {
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  const section = readme.slice(readme.indexOf("### Sandbox"));
  const block = /```\n([\s\S]*?)```/.exec(section);
  assert.ok(block, "the README's sandbox section has no code block");
  return block[1]!.replace("<the variables above>", ENV_NAMES.join(","))
    .replaceAll("\\\n", " ").trim().split(/\s+/);
}

const isV8Flags = (flag: string) => flag.startsWith("--v8-flags=");

/** Runs `deno <args>` in the project root with only what deno needs from the environment. */
async function deno(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const name of ["HOME", "PATH", "DENO_DIR", "XDG_CACHE_HOME"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  const { code, stdout, stderr } = await new Deno.Command("deno", {
    args,
    cwd: PROJECT_ROOT,
    env,
    clearEnv: true,
    stdin: "null",
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code, stdout: text(stdout), stderr: text(stderr) };
}

Deno.test("parseStartTask() reads the real deno.json's start task", async (t) => {
  const command = parseStartTask(await Deno.readTextFile(DENO_JSON));

  await t.step("the entry point is main.ts; the task names the permission set", () => {
    assert.equal(command.entry, "main.ts");
    assert.ok(command.flags.includes("--permission-set=bot"), command.flags.join(" "));
    assert.ok(command.flags.includes("--no-prompt"));
    assert.ok(command.permissions !== null);
  });

  await t.step("runFlags spell the set out as scoped env, read and write flags", () => {
    for (const prefix of ["--allow-env=", "--allow-read=", "--allow-write="]) {
      const flag = command.runFlags.find((f) => f.startsWith(prefix));
      assert.ok(flag, `missing ${prefix} in ${command.runFlags.join(" ")}`);
      assert.ok(flag.length > prefix.length, `${prefix} lists nothing`);
    }
    assert.ok(!command.runFlags.some((flag) => flag.startsWith("--permission-set")));
    // The config's unstable features, which deno run would take from deno.json.
    for (const flag of ["--unstable-kv", "--unstable-raw-imports", "--no-prompt"]) {
      assert.ok(command.runFlags.includes(flag), `${flag} missing`);
    }
  });

  await t.step("readStartCommand() gives the same answer", () => {
    assert.deepEqual(readStartCommand(), command);
  });
});

Deno.test("the start task grants no more than the README's sandbox section says", async (t) => {
  const { runFlags, permissions } = readStartCommand();
  const set = permissions as PermissionSet;

  await t.step("exactly the README's flags", async () => {
    const documented = await readmeSandboxFlags();
    // The V8 flags grant nothing; the README's build section explains them (tested below).
    const granted = runFlags.filter((flag) => flag !== "--quiet" && !isV8Flags(flag));
    assert.deepEqual([...granted].sort(), [...documented].sort());
  });

  await t.step("no run, ffi, import or blanket permission", () => {
    for (const name of ["all", "run", "ffi", "import"] as const) {
      assert.equal(set[name], undefined, `${name} must not be granted`);
    }
    for (const flag of runFlags) {
      assert.ok(!/^--allow-(run|ffi|all|import)\b|^-A$/.test(flag), `${flag} must not be granted`);
      // An unscoped --allow-env/--allow-read/--allow-write/--allow-sys would grant everything.
      assert.ok(!/^--allow-(env|read|write|sys)$/.test(flag), `${flag} must be scoped`);
    }
  });

  await t.step("env: exactly the variables config.ts reads, the rest look unset", () => {
    assert.deepEqual(set.env, { allow: [...ENV_NAMES], ignore: true });
  });

  await t.step("read and write: only data/, backups/ and logs/", () => {
    for (const name of ["read", "write"] as const) {
      const paths = set[name];
      assert.ok(Array.isArray(paths), `${name} must be a list of folders`);
      assert.ok(paths.every((path) => SANDBOX_FOLDERS.includes(path)), paths.join(","));
    }
  });

  await t.step("sys: only the host name and free disk space", () => {
    const kinds = set.sys;
    assert.ok(Array.isArray(kinds));
    assert.ok(kinds.every((kind) => SANDBOX_SYS.includes(kind)), kinds.join(","));
  });
});

Deno.test("runFlags grant exactly what the start task's --permission-set grants", async () => {
  const { flags, runFlags } = readStartCommand();
  const probe = "tests/scripts/fixtures/permission_probe.ts";
  const underSet = await deno(["run", ...flags, probe]);
  const underFlags = await deno(["run", ...runFlags, probe]);
  assert.equal(underSet.code, 0, underSet.stderr);
  assert.equal(underFlags.code, 0, underFlags.stderr);
  const answers = JSON.parse(underSet.stdout);
  assert.deepEqual(JSON.parse(underFlags.stdout), answers);
  // The probe sees the sandbox, not an unrestricted process.
  assert.equal(answers['{"name":"read","path":"/etc/passwd"}'], "prompt");
  assert.equal(answers['{"name":"write","path":"data"}'], "granted");
  assert.equal(answers["HOME is"], "unset");
});

Deno.test("deno task start prints one short line of its own, then the program's", async () => {
  const { code, stdout, stderr } = await deno(["task", "start", "version"]);
  assert.equal(code, 0, stderr);
  const own = stderr.split("\n").filter((line) => line.trim() !== "");
  assert.equal(own.length, 1, `deno printed more than its task line:\n${stderr}`);
  assert.match(own[0]!, /^Task start MALLOC_MMAP_THRESHOLD_=131072 deno run /);
  // The permission set keeps the permissions out of the line; what remains is the V8 flags.
  assert.ok(own[0]!.length <= 190, `the task line is ${own[0]!.length} characters: ${own[0]}`);
  assert.match(stdout, /^service-desk-bot \d+\.\d+\.\d+ /);
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
    {
      name: "a missing permission set",
      json: taskJson("deno run --permission-set=bot main.ts", { other: {} }),
      error: /no permission set "bot"/,
    },
    {
      name: "a set granting everything",
      json: taskJson("deno run --permission-set=bot main.ts", { bot: { all: true } }),
      error: /every permission/,
    },
    {
      name: "a set with an unknown permission",
      json: taskJson("deno run --permission-set main.ts", { default: { hrtime: true } }),
      error: /unknown permission "hrtime"/,
    },
    {
      name: "a set with a malformed value",
      json: taskJson("deno run --permission-set=bot main.ts", { bot: { read: "data" } }),
      error: /read\.allow is not understood/,
    },
  ];
  for (const { name, json, error } of cases) {
    await t.step(name, () => {
      assert.throws(() => parseStartTask(json), error);
    });
  }
});

Deno.test("parseStartTask() takes NAME=value words before deno run as the environment", () => {
  const command = parseStartTask(taskJson("A_B=1 MALLOC_X_=131072 deno run --allow-net app.ts"));
  assert.deepEqual(command.env, { A_B: "1", MALLOC_X_: "131072" });
  assert.deepEqual(command.flags, ["--allow-net"]);
  assert.equal(command.entry, "app.ts");
  assert.deepEqual(parseStartTask(taskJson("deno run app.ts")).env, {});
  assert.throws(() => parseStartTask(taskJson("A=1 node app.js")), /deno run/);
});

Deno.test("the binary's runners set what the start task sets before deno run", async () => {
  const { env } = readStartCommand();
  assert.deepEqual(env, { MALLOC_MMAP_THRESHOLD_: "131072" });
  const unit = await Deno.readTextFile(`${PROJECT_ROOT}/deploy/bot.service`);
  const dockerfile = await Deno.readTextFile(`${PROJECT_ROOT}/Dockerfile`);
  for (const [name, value] of Object.entries(env)) {
    assert.match(unit, new RegExp(`^Environment=${name}=${value}$`, "m"), "deploy/bot.service");
    assert.match(dockerfile, new RegExp(`^\\s*${name}=${value}$`, "m"), "the Dockerfile's ENV");
  }
});

Deno.test("parseStartTask() splits flags and entry on any whitespace", () => {
  const command = parseStartTask(taskJson("  deno  run\t--allow-net   --no-prompt app.ts "));
  assert.deepEqual(command.flags, ["--allow-net", "--no-prompt"]);
  assert.equal(command.entry, "app.ts");
  assert.equal(command.permissions, null);
  assert.deepEqual(command.runFlags, ["--allow-net", "--no-prompt"]);
});

Deno.test("permissionFlags() spells each form of a permission set out as flags", async (t) => {
  const cases: Array<[string, PermissionSet, string[]]> = [
    ["true", { net: true }, ["--allow-net"]],
    ["false", { net: false }, []],
    ["a list", { read: ["data", "logs"] }, ["--allow-read=data,logs"]],
    ["allow and ignore", { env: { allow: ["A", "B"], ignore: true } }, [
      "--allow-env=A,B",
      "--ignore-env",
    ]],
    ["allow and deny", { net: { allow: true, deny: ["10.0.0.1"] } }, [
      "--allow-net",
      "--deny-net=10.0.0.1",
    ]],
    ["in a fixed order", { sys: ["hostname"], read: ["data"] }, [
      "--allow-read=data",
      "--allow-sys=hostname",
    ]],
  ];
  for (const [name, set, flags] of cases) {
    await t.step(name, () => assert.deepEqual(permissionFlags(set), flags));
  }
});

Deno.test("compileArgs() builds the binary with exactly the start task's permissions", () => {
  const { runFlags, entry } = readStartCommand();
  const args = compileArgs(runFlags, entry, "dist/service-desk-bot");
  assert.equal(args[0], "compile");
  assert.ok(args.includes("--frozen"));
  // Permissions, --ignore-env, and the unstable features the embedded stores need
  // (Deno KV, and PGlite's files and the migrations imported as bytes and text).
  for (const flag of runFlags.filter((f) => f !== "--quiet")) {
    assert.ok(args.includes(flag), `${flag} missing from ${args.join(" ")}`);
  }
  for (const flag of ["--unstable-kv", "--unstable-raw-imports", "--ignore-env"]) {
    assert.ok(args.includes(flag), `${flag} missing from ${args.join(" ")}`);
  }
  assert.ok(!args.includes("--quiet"), "a run-only flag");
  assert.deepEqual(args.slice(-3), ["--output", "dist/service-desk-bot", "main.ts"]);
  // Nothing that the start task does not grant.
  const granted = args.filter((arg) => /^--(allow|deny|ignore)-/.test(arg));
  assert.deepEqual(granted, runFlags.filter((f) => /^--(allow|deny|ignore)-/.test(f)));
});

Deno.test("the start task's V8 flags are the README's, and the binary gets them too", async () => {
  const { runFlags, entry } = readStartCommand();
  const v8 = runFlags.filter(isV8Flags);
  assert.equal(v8.length, 1, `one --v8-flags in ${runFlags.join(" ")}`);
  // The README's build section says why: the young generation capped at 16 MB, the old one
  // grown by half of what survives a collection, WebAssembly (PGlite) on Liftoff only.
  for (const name of ["--max-semi-space-size=", "--heap-growing-percent=", "--liftoff-only"]) {
    assert.ok(v8[0]!.includes(name), `${name} missing from ${v8[0]}`);
  }
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  const build = readme.slice(readme.indexOf("### Build the binary"), readme.indexOf("### Sandbox"));
  assert.ok(build.includes(v8[0]!), `the README's build section does not name ${v8[0]}`);
  assert.ok(compileArgs(runFlags, entry, "dist/bot").includes(v8[0]!));
});

Deno.test("compileArgs() drops run-only flags and passes a target", () => {
  const args = compileArgs(
    ["--watch", "--quiet", "--allow-net", "--no-prompt"],
    "main.ts",
    "out/bot",
    "x86_64-unknown-linux-gnu",
  );
  assert.ok(!args.includes("--watch"));
  assert.ok(!args.includes("--quiet"));
  assert.deepEqual(args.slice(args.indexOf("--target"), args.indexOf("--target") + 2), [
    "--target",
    "x86_64-unknown-linux-gnu",
  ]);
  assert.deepEqual(args.slice(-3), ["--output", "out/bot", "main.ts"]);
});

Deno.test("unshippedFolders() finds the npm packages' test folders, which compile must leave out", () => {
  const folders = unshippedFolders(PROJECT_ROOT);
  assert.ok(
    folders.some((path) => /\/@electric-sql\/pglite-socket\/tests$/.test(path)),
    `pglite-socket/tests missing from ${folders.join(", ")}`,
  );
  assert.ok(folders.every((path) => path.startsWith("node_modules/.deno/")));
  const args = compileArgs(["--allow-net"], "main.ts", "out/bot", undefined, folders);
  assert.equal(args.filter((arg) => arg === "--exclude").length, folders.length);
});
