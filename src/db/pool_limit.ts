/**
 * A bounded wait for a free pooled connection. postgres.js queues a query that finds every
 * connection busy without any limit (and pipelines it behind whatever a busy connection runs),
 * so one slow statement can make every handler wait as long as it runs. `limitPool` wraps the
 * client so that at most `size` queries and transactions are handed to it at once; any more
 * wait here, and one that waits longer than `waitMs` fails with a {@link DatabaseError}. The
 * wrapped client keeps postgres.js's API: tagged templates, fragments, `sql.json`, `unsafe`,
 * `begin` (a transaction holds one place until it ends), `reserve`. (A query sent through the
 * outer client from inside a transaction on a full pool, which would wait for ever, now fails.)
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
}

/** The part of a postgres.js Query this module touches (it is a Promise subclass). */
interface PendingQuery {
  handler: ((query: PendingQuery) => void) & { debug?: unknown };
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  cancelled: unknown;
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
 * Wraps the postgres.js client `sql` so that a query or transaction that cannot get one of
 * `size` places within `waitMs` fails with a {@link DatabaseError} saying so, instead of
 * waiting for as long as the statements ahead of it run. See the module documentation.
 */
export function limitPool<T extends object>(sql: T, options: PoolLimitOptions): T {
  const { size, waitMs, where } = options;
  const places = new Places(size);
  const timeout = () =>
    new DatabaseError(
      `no database connection became free within ${waitMs} ms (all ${size} in use, ${where}): ` +
        `the database is slow or overloaded; see DB_POOL_SIZE and DB_POOL_TIMEOUT`,
    );

  /** Makes `query` wait for a place when it is sent, and give it back once it settles. */
  const guard = <Q>(query: Q): Q => {
    if (!isQuery(query)) return query;
    const send = query.handler;
    let holding = false;
    const release = () => {
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

  const methods: Record<string | symbol, unknown> = {
    unsafe: (...args: unknown[]) => guard(call(sql, "unsafe", args)),
    file: (...args: unknown[]) => guard(call(sql, "file", args)),
    begin: (...args: unknown[]) => holdPlace(() => call(sql, "begin", args) as Promise<unknown>),
    reserve: async () => {
      await places.take(waitMs, timeout);
      try {
        const reserved = await (call(sql, "reserve", []) as Promise<{ release(): void }>);
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

  return new Proxy(sql, {
    apply: (target, thisArg, args) =>
      guard(Reflect.apply(target as (...a: unknown[]) => unknown, thisArg, args)),
    get: (target, property, receiver) =>
      Object.hasOwn(methods, property)
        ? methods[property]
        : Reflect.get(target, property, receiver),
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
