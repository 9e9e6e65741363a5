/**
 * Bounded waits around postgres.js: for a free pooled connection, and for an answer.
 *
 * postgres.js queues a query that finds every connection busy without any limit (and pipelines
 * it behind whatever a busy connection runs), so one slow statement can make every handler wait
 * as long as it runs. `limitPool` wraps the client so that at most `size` queries and
 * transactions are handed to it at once; any more wait here, and one that waits longer than
 * `waitMs` fails with a {@link DatabaseError}. The wrapped client keeps postgres.js's API: tagged
 * templates, fragments, `sql.json`, `unsafe`, `begin` (a transaction holds one place until it
 * ends), `reserve`. (A query sent through the outer client from inside a transaction on a full
 * pool, which would wait for ever, now fails.)
 *
 * postgres.js also waits for ever for the answer to a query it sent: a server that hangs with
 * its connections open (a frozen host, a network that drops packets without a reset) hangs every
 * handler that queries it, since the statement timeout is the server's to enforce. With
 * `answerMs`, a query (outside transactions, which run the unlimited work: migrations, backups)
 * that has no answer that long fails, and the whole pool counts as lost: its connections are
 * dropped, failing what else waits on them, and a new pool from `open` serves the next queries.
 */
import { DatabaseError } from "../errors.ts";

/** Options of {@link limitPool}. */
export interface PoolLimitOptions {
  /** Queries and transactions handed to postgres.js at once: its `max` connections. */
  size: number;
  /** Longest wait for a place, in ms. */
  waitMs: number;
  /** Names the database in the error, e.g. `postgres db.example:5432/desk`. */
  where: string;
  /**
   * Longest wait for the answer to a query sent, in ms, after which the pool counts as lost;
   * 0 waits for ever. It must exceed the server's statement timeout plus the connect timeout.
   * @default 0
   */
  answerMs?: number;
  /** Told, with what happened, each time a pool is lost and replaced. */
  onLost?: (error: DatabaseError) => void;
}

/** The part of a postgres.js Query this module touches (it is a Promise subclass). */
interface PendingQuery {
  handler: ((query: PendingQuery) => void) & { debug?: unknown };
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  cancelled: unknown;
  /** Set by `.cursor()`: the answer comes in parts, as the caller asks for them. */
  cursorRows?: number;
  /** Set by `.readable()` and `.writable()` (COPY). */
  streaming?: boolean;
}

/** The part of the postgres.js client this module calls itself. */
interface Client {
  end(options: { timeout: number }): Promise<void>;
}

/** How many places are taken, and who waits for one, first come first served. */
class Places {
  #free: number;
  readonly #waiting: Array<{ grant: () => void; timer: ReturnType<typeof setTimeout> }> = [];

  constructor(size: number) {
    this.#free = size;
  }

  /** Resolves once a place is taken; rejects with `timeout()` after `waitMs`. */
  take(waitMs: number, timeout: () => Error): Promise<void> {
    if (this.#free > 0 && this.#waiting.length === 0) {
      this.#free--;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        grant: () => {
          clearTimeout(waiter.timer);
          resolve();
        },
        timer: setTimeout(() => {
          this.#waiting.splice(this.#waiting.indexOf(waiter), 1);
          reject(timeout());
        }, waitMs),
      };
      this.#waiting.push(waiter);
    });
  }

  /** Gives a place back, to the longest waiter if there is one. */
  give(): void {
    const next = this.#waiting.shift();
    if (next) next.grant();
    else this.#free++;
  }
}

/**
 * Opens a postgres.js client with `open` and wraps it so that a query or transaction that cannot
 * get one of `size` places within `waitMs` fails with a {@link DatabaseError} saying so, instead
 * of waiting for as long as the statements ahead of it run, and (with `answerMs`) so that a
 * query without an answer fails and the client is replaced. See the module documentation.
 */
export function limitPool<T extends object>(open: () => T, options: PoolLimitOptions): T {
  const { size, waitMs, where, answerMs = 0, onLost } = options;
  const places = new Places(size);
  const timeout = () =>
    new DatabaseError(
      `no database connection became free within ${waitMs} ms (all ${size} in use, ${where}): ` +
        `the database is slow or overloaded; see DB_POOL_SIZE and DB_POOL_TIMEOUT`,
    );
  const first = open();
  let current = first;

  /** Drops the client `lost` (if it is still the current one) and opens another. */
  const replace = (lost: T, error: DatabaseError) => {
    if (lost !== current) return;
    current = open();
    onLost?.(error);
    // Fails what waits on its connections (giving their places back) and closes them.
    (lost as unknown as Client).end({ timeout: 0 }).catch(() => {});
  };

  /** Makes `query` wait for a place when it is sent, and give it back once it settles. */
  const guard = <Q>(query: Q, client: T): Q => {
    if (!isQuery(query)) return query;
    const send = query.handler;
    let holding = false;
    let unanswered: ReturnType<typeof setTimeout> | undefined;
    const release = () => {
      clearTimeout(unanswered);
      if (!holding) return;
      holding = false;
      places.give();
    };
    // postgres.js settles a query through these (a cursor replaces them as it goes), so
    // wrapping whatever is assigned to them sees every way a query ends.
    for (const name of ["resolve", "reject"] as const) {
      let settle = query[name];
      Object.defineProperty(query, name, {
        configurable: true,
        get: () => (value: unknown) => {
          release();
          return settle(value);
        },
        set: (fn: (value: unknown) => void) => settle = fn,
      });
    }
    const waiting: PendingQuery["handler"] = (pending) => {
      places.take(waitMs, timeout).then(() => {
        holding = true;
        // Cancelled while it waited: postgres.js would leave the connection stuck.
        if (pending.cancelled) return release();
        send(pending);
        if (answerMs > 0 && holding && !pending.cursorRows && !pending.streaming) {
          unanswered = setTimeout(() => {
            const error = new DatabaseError(
              `the database ${where} did not answer within ${answerMs} ms ` +
                `(DB_STATEMENT_TIMEOUT + DB_CONNECT_TIMEOUT): it hangs or the network drops ` +
                `packets; its connections are dropped and opened again`,
            );
            pending.reject(error);
            replace(client, error);
          }, answerMs);
        }
      }, (error) => pending.reject(error));
    };
    waiting.debug = send.debug;
    query.handler = waiting;
    return query;
  };

  const holdPlace = async <R>(work: () => Promise<R>): Promise<R> => {
    await places.take(waitMs, timeout);
    try {
      return await work();
    } finally {
      places.give();
    }
  };

  /** `method` of the current client, its query guarded. */
  const guarded = (method: string) => (...args: unknown[]) => {
    const client = current;
    return guard(call(client, method, args), client);
  };
  const methods: Record<string | symbol, unknown> = {
    unsafe: guarded("unsafe"),
    file: guarded("file"),
    begin: (...args: unknown[]) =>
      holdPlace(() => call(current, "begin", args) as Promise<unknown>),
    reserve: async () => {
      await places.take(waitMs, timeout);
      try {
        const reserved = await (call(current, "reserve", []) as Promise<{ release(): void }>);
        const release = reserved.release.bind(reserved);
        let released = false;
        reserved.release = () => {
          release();
          if (!released) places.give();
          released = true;
        };
        return reserved;
      } catch (error) {
        places.give();
        throw error;
      }
    },
  };

  // The proxy's target stays the first client; everything is forwarded to the current one.
  return new Proxy(first, {
    apply: (_target, thisArg, args) => {
      const client = current;
      return guard(Reflect.apply(client as (...a: unknown[]) => unknown, thisArg, args), client);
    },
    get: (_target, property) =>
      Object.hasOwn(methods, property) ? methods[property] : Reflect.get(current, property),
  });
}

function call(target: object, method: string, args: unknown[]): unknown {
  return (target as Record<string, (...a: unknown[]) => unknown>)[method]!(...args);
}

/** Whether `value` is a postgres.js Query (not a helper such as `sql("name")`'s identifier). */
function isQuery(value: unknown): value is PendingQuery {
  if (!(value instanceof Promise) || !("executed" in value)) return false;
  return typeof (value as { handler?: unknown }).handler === "function";
}
