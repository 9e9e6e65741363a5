/**
 * A free TCP port on 127.0.0.1 for a throwaway server or the program under test. Never one of
 * the machine's shared services' standard ports (Redis 6379, Postgres 5432): the OS does not
 * hand those out as ephemeral ports, but those services must stay untouched.
 */
export function freePort(): number {
  for (;;) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const { port } = listener.addr as Deno.NetAddr;
    listener.close();
    if (port !== 6379 && port !== 5432) return port;
  }
}
