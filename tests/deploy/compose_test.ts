/**
 * deploy/docker-compose.yml checked as data: `docker compose config` is not available where
 * the tests run, so the file is parsed and its production properties asserted one by one.
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import { loadConfig } from "../../src/config.ts";
import { FAKE_TOKEN } from "../fake_bot_api.ts";

const DEPLOY = new URL("../../deploy/", import.meta.url);
const COMPOSE_TEXT = await Deno.readTextFile(new URL("docker-compose.yml", DEPLOY));

type Environment = Record<string, string | number | boolean | null> | string[];
interface Service {
  image?: string;
  build?: unknown;
  command?: string | string[];
  env_file?: string | (string | { path: string })[];
  environment?: Environment;
  ports?: unknown[];
  volumes?: (string | { type?: string; source?: string })[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: { test?: string | string[]; disable?: boolean };
  restart?: string;
  stop_grace_period?: string;
  cpus?: string | number;
  mem_limit?: string | number;
  deploy?: { resources?: { limits?: { cpus?: string | number; memory?: string } } };
  logging?: { driver?: string; options?: Record<string, string> };
}
interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

const compose = parse(COMPOSE_TEXT) as Compose;
const services = Object.entries(compose.services);
const service = (name: string): Service => {
  const found = compose.services[name];
  assert.ok(found, `no service "${name}"`);
  return found;
};
const words = (value: string | string[] | undefined) =>
  Array.isArray(value) ? value.join(" ") : value ?? "";

/** Seconds in a Compose duration such as `40s`, `1m30s` or `1h`. */
function seconds(duration: string): number {
  const units: Record<string, number> = { h: 3600, m: 60, s: 1, ms: 0.001 };
  const parts = [...duration.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)];
  assert.ok(parts.length > 0, `not a duration: ${duration}`);
  return parts.reduce((sum, [, n, unit]) => sum + Number(n) * units[unit!]!, 0);
}

/** Names that hold a secret. */
const SECRET_NAME = /TOKEN|SECRET|PASSWORD|PASSWD|_AUTH\b/;
/** A URL carrying a password that is not a `${reference}` or a `<placeholder>`. */
const URL_WITH_PASSWORD = /[a-z][a-z0-9+.-]*:\/\/[^\s/:@"']*:(?![$<])[^\s/@"']+@/gi;

/**
 * Every place in a Compose file that writes a secret's value instead of taking it from an
 * env_file: secret variables in `environment:`, URLs with passwords, and `NAME=value`,
 * `NAME: value` or `requirepass value` anywhere in the text, comments included. A value that
 * is a `$reference` expanded inside the container is not a secret.
 */
export function inlineSecrets(text: string): string[] {
  const found: string[] = [];
  const doc = parse(text) as Compose;
  for (const [name, svc] of Object.entries(doc.services ?? {})) {
    const env = svc.environment ?? {};
    const entries = Array.isArray(env)
      ? env.map((item) => item.split("=", 2) as [string, string?])
      : Object.entries(env).map(([key, value]) => [key, String(value ?? "")] as const);
    for (const [key, value] of entries) {
      if (SECRET_NAME.test(key)) found.push(`${name}.environment.${key}`);
      else if (/_URL$/.test(key) && /:\/\/[^/@]*:[^/@]*@/.test(value ?? "")) {
        found.push(`${name}.environment.${key}`);
      }
    }
  }
  text.split("\n").forEach((line, index) => {
    const where = `line ${index + 1}`;
    // The value may be quoted, also with an escaped quote inside a YAML string.
    const assignment = /(?<![{$\w])([A-Z][A-Z0-9_]*)\s*[:=]\s*(?:\\?["'])?([^\s"'#\\]+)/g;
    for (const [, key, value] of line.matchAll(assignment)) {
      if (SECRET_NAME.test(key!) && !value!.startsWith("$")) found.push(`${where}: ${key}`);
    }
    for (const [, value] of line.matchAll(/requirepass\s+["']?([^\s"']+)/g)) {
      if (!value!.startsWith("$")) found.push(`${where}: requirepass`);
    }
    for (const [url] of line.matchAll(URL_WITH_PASSWORD)) found.push(`${where}: ${url}`);
  });
  return found;
}

Deno.test("docker-compose.yml runs the bot with PostgreSQL and Redis", async (t) => {
  await t.step("three services: bot, postgres, redis", () => {
    assert.deepEqual(services.map(([name]) => name).sort(), ["bot", "postgres", "redis"]);
  });

  await t.step("the bot is built from this repository's Dockerfile", () => {
    assert.deepEqual(service("bot").build, { context: "..", dockerfile: "Dockerfile" });
  });

  await t.step("each has a healthcheck that asks the service itself", () => {
    const test = (name: string) => {
      const check = service(name).healthcheck;
      assert.ok(check && !check.disable, `${name} has no healthcheck`);
      return words(check.test);
    };
    assert.match(test("bot"), /service-desk-bot healthcheck$/);
    assert.match(test("postgres"), /\bpg_isready\b/);
    assert.match(test("redis"), /\bredis-cli\b.*\bping\b/);
    // The password reaches redis-cli through REDISCLI_AUTH, not its arguments (`ps`).
    assert.doesNotMatch(test("redis"), /redis-cli\b[^|]*\s(-a|--pass|--user)\b/);
    assert.match(test("redis"), /REDISCLI_AUTH=/);
  });

  await t.step("the bot starts only once postgres and redis are healthy", () => {
    const dependsOn = service("bot").depends_on;
    assert.ok(dependsOn && !Array.isArray(dependsOn), "depends_on needs conditions");
    assert.deepEqual(dependsOn.postgres?.condition, "service_healthy");
    assert.deepEqual(dependsOn.redis?.condition, "service_healthy");
  });

  await t.step("restart policies; the bot's gives up instead of looping on exit 77/78", () => {
    for (const [name, svc] of services) {
      assert.match(svc.restart ?? "", /^(always|unless-stopped|on-failure(:\d+)?)$/, name);
    }
    const retries = Number(service("bot").restart?.match(/^on-failure:(\d+)$/)?.[1]);
    assert.ok(retries >= 1 && retries <= 10, `bot: restart "${service("bot").restart}"`);
  });

  await t.step("each has CPU and memory limits", () => {
    for (const [name, svc] of services) {
      const limits = svc.deploy?.resources?.limits;
      assert.ok(Number(limits?.cpus ?? svc.cpus) > 0, `${name}: no CPU limit`);
      assert.match(String(limits?.memory ?? svc.mem_limit ?? ""), /^\d+(\.\d+)?[kmg]?b?$/i, name);
    }
  });

  await t.step("each caps its log size", () => {
    for (const [name, svc] of services) {
      assert.equal(svc.logging?.driver, "json-file", name);
      assert.match(svc.logging?.options?.["max-size"] ?? "", /^\d+[kmg]$/, name);
      assert.ok(Number(svc.logging?.options?.["max-file"]) >= 1, name);
    }
  });

  await t.step("postgres and redis publish no port; the bot only on loopback", () => {
    assert.equal(service("postgres").ports, undefined);
    assert.equal(service("redis").ports, undefined);
    for (const port of service("bot").ports ?? []) assert.match(String(port), /^127\.0\.0\.1:/);
  });

  await t.step("postgres and redis keep their data in named volumes", () => {
    const named = (name: string, target: string) =>
      (service(name).volumes ?? []).some((volume) => {
        const [source, path] = typeof volume === "string"
          ? volume.split(":")
          : [volume.source, (volume as { target?: string }).target];
        return path === target && source !== undefined && source in (compose.volumes ?? {});
      });
    assert.ok(named("postgres", "/var/lib/postgresql/data"));
    assert.ok(named("redis", "/data"));
  });

  await t.step("redis: a password, AOF fsynced every second, maxmemory without eviction", () => {
    const command = words(service("redis").command);
    assert.match(command, /requirepass \$\$\{REDIS_PASSWORD\}/);
    assert.match(command, /--appendonly yes\b/);
    assert.match(command, /--appendfsync everysec\b/);
    assert.match(command, /--maxmemory \d+[kmg]?b?\b/i);
    assert.match(command, /--maxmemory-policy noeviction\b/);
  });

  await t.step("stop_grace_period leaves the bot SHUTDOWN_TIMEOUT plus the event-log flush", () => {
    // The default comes from the code; a stop then writes queued events within 5 s.
    const shutdownSeconds = loadConfig({ BOT_TOKEN: FAKE_TOKEN }).shutdownTimeoutMs / 1000;
    const grace = seconds(service("bot").stop_grace_period ?? "10s");
    assert.ok(grace > shutdownSeconds + 5, `stop_grace_period ${grace}s`);
  });

  await t.step("images pinned to an exact version or a digest", () => {
    for (const [name, svc] of services) {
      if (svc.build !== undefined) continue; // built from this checkout, never pulled
      const image = svc.image ?? "";
      const [, tag = "", digest] =
        image.match(/^[\w./-]+(?::([\w.-]+))?(@sha256:[0-9a-f]{64})?$/) ??
          [];
      assert.ok(digest || /^v?\d+\.\d+(\.\d+)*(-[\w.]+)?$/.test(tag), `${name}: ${image}`);
    }
  });
});

Deno.test("docker-compose.yml takes every secret from env files", async (t) => {
  await t.step("no secret value anywhere in the file", () => {
    assert.deepEqual(inlineSecrets(COMPOSE_TEXT), []);
  });

  await t.step("each service reads its own env file, which has an example next to it", async () => {
    const files = (svc: Service) =>
      [svc.env_file ?? []].flat().map((file) => typeof file === "string" ? file : file.path);
    for (const [name, svc] of services) {
      assert.deepEqual(files(svc), [`${name}.env`], name);
      await Deno.stat(new URL(`${name}.env.example`, DEPLOY));
    }
  });

  await t.step("the check finds secrets written inline", () => {
    const bad = [
      "services:",
      "  db:",
      "    environment:",
      "      POSTGRES_PASSWORD: hunter2",
      "      DATABASE_URL: postgres://bot:hunter2@db/bot",
      "    command: redis-server --requirepass hunter2",
      "  bot:",
      "    environment: [BOT_TOKEN=123:abc]",
      "# REDIS_URL=redis://:hunter2@redis:6379/0",
    ].join("\n");
    assert.deepEqual(inlineSecrets(bad), [
      "db.environment.POSTGRES_PASSWORD",
      "db.environment.DATABASE_URL",
      "bot.environment.BOT_TOKEN",
      "line 4: POSTGRES_PASSWORD",
      "line 5: postgres://bot:hunter2@",
      "line 6: requirepass",
      "line 8: BOT_TOKEN",
      "line 9: redis://:hunter2@",
    ]);
  });
});
