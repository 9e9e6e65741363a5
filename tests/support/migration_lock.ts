/**
 * An operator's `psql` holding the migrator's advisory lock (`src/db/migrate.ts`) in an open
 * transaction, as someone inspecting the database by hand might: migrations wait for it.
 */
import postgres from "postgres";

/** The held lock; `release()` commits (the migrations go on), disposing also closes the session. */
export interface HeldMigrationLock extends AsyncDisposable {
  release(): Promise<void>;
}

/** Takes the migrator's lock on the database at `url` in a session named `psql`. */
export async function holdMigrationLock(url: string): Promise<HeldMigrationLock> {
  const psql = postgres(url, { max: 1, connection: { application_name: "psql" } });
  const session = await psql.reserve();
  await session`begin`;
  await session`select pg_advisory_xact_lock(x'7364622d6d696772'::bigint)`;
  let released: Promise<void> | null = null;
  const release = () => released ??= session`commit`.then(() => {});
  return {
    release,
    async [Symbol.asyncDispose]() {
      await release().catch(() => {});
      session.release();
      await psql.end();
    },
  };
}
