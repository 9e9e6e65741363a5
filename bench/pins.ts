/**
 * The bench's own programs (`bench/floor/`, `bench/peer/`, `bench/plugins/`) have their own
 * deno.json, so that what only they use stays out of the project's import map. What they
 * share with the project must be the same version, or the comparison is not like for like.
 *
 * @module
 */

const ROOT_CONFIG = new URL("../deno.json", import.meta.url);

async function imports(config: URL): Promise<Record<string, string>> {
  const json = JSON.parse(await Deno.readTextFile(config)) as {
    imports?: Record<string, string>;
  };
  return json.imports ?? {};
}

/**
 * Throws if the config at `config` maps a name that the project's deno.json maps too to
 * anything else, naming each difference; with `complete`, also if it lacks one of the
 * project's names (a config that runs the project's own modules needs them all).
 */
export async function assertSamePins(config: URL, { complete = false } = {}): Promise<void> {
  const [root, own] = await Promise.all([imports(ROOT_CONFIG), imports(config)]);
  const differences = Object.entries(root)
    .filter(([name, target]) => name in own ? own[name] !== target : complete)
    .map(([name, target]) => `${name}: ${own[name] ?? "missing"} here, ${target} in the project`);
  if (differences.length > 0) {
    throw new Error(
      `${config.pathname} does not pin what the project's deno.json pins ` +
        `(update it and run deno install next to it):\n${differences.join("\n")}`,
    );
  }
}
