/**
 * A throwaway certificate authority and a certificate for `localhost` signed by it, made with
 * `openssl`, for TLS tests: a client trusts `ca` (through `DENO_CERT`, as an operator would),
 * a server presents `cert` and `key`.
 */
import assert from "node:assert/strict";

/** The PEM files, in a temp dir that {@link TestCertificates[Symbol.asyncDispose]} removes. */
export interface TestCertificates extends AsyncDisposable {
  dir: string;
  ca: string;
  cert: string;
  key: string;
}

/** Runs openssl with `args` in `dir`. */
async function openssl(dir: string, ...args: string[]): Promise<void> {
  const { code, stderr } = await new Deno.Command("openssl", { args, cwd: dir }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
}

/** Makes a CA and a `localhost` certificate it signed, valid for two days. */
export async function makeTestCertificates(prefix: string): Promise<TestCertificates> {
  const dir = await Deno.makeTempDir({ prefix });
  await openssl(dir, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", ...[
    ...["-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=test CA"],
  ]);
  await openssl(dir, "req", "-newkey", "rsa:2048", "-nodes", ...[
    ...["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"],
  ]);
  await Deno.writeTextFile(`${dir}/ext.cnf`, "subjectAltName=DNS:localhost\n");
  await openssl(dir, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", ...[
    ...["-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2"],
    ...["-extfile", "ext.cnf"],
  ]);
  return {
    dir,
    ca: `${dir}/ca.pem`,
    cert: `${dir}/server.pem`,
    key: `${dir}/server.key`,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/** The project's config: its import map resolves what the scripts' modules import. */
const PROJECT_CONFIG = new URL("../../deno.json", import.meta.url).pathname;

/**
 * Runs `script` with `deno eval` in a clean environment plus `env`: a process of its own, as
 * the bot runs, since `DENO_CERT` is read when Deno starts.
 */
export function denoEval(script: string, env: Record<string, string>): Promise<Deno.CommandOutput> {
  return new Deno.Command("deno", {
    args: ["eval", "--frozen", "--config", PROJECT_CONFIG, script],
    env: { HOME: Deno.env.get("HOME") ?? "/tmp", ...env, NO_COLOR: "1" },
    clearEnv: true,
  }).output();
}
