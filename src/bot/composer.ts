/**
 * grammY's `Composer`, run as a flat list instead of a chain of closures. grammY joins every
 * `use` to the ones before it with an `async` wrapper, and routes every filter (`on`,
 * `command`, `callbackQuery`, `hears`, `chatType` and the rest) through `lazy`: an update that
 * passes some seventy handlers paid, at each one, a promise or three, a closure and, at each
 * filter, a new `Composer` with its chain. That was most of what grammY allocated per update.
 *
 * Here a composer keeps its steps in an array and one function walks it: a filter's predicate
 * is tested in place, so a handler that does not match costs no allocation at all, and only a
 * step that runs gets a `next` of its own. The behaviour is grammY's: middleware added to a
 * returned composer later runs too, a predicate may be async, `next` called twice fails, a
 * throw becomes a rejection; a test holds the two side by side.
 *
 * @module
 */
import {
  Composer,
  type Context,
  type Middleware,
  type MiddlewareFn,
  type NextFunction,
} from "grammy";

type MaybePromise<T> = T | Promise<T>;

/** One step: middleware, run only when its predicate (if any) holds. */
interface Step<C extends Context> {
  readonly test: ((ctx: C) => MaybePromise<boolean>) | null;
  readonly run: MiddlewareFn<C>;
}

/** A `Composer` that runs its middleware as a flat list; use it for every feature. */
export class BotComposer<C extends Context> extends Composer<C> {
  readonly #steps: Step<C>[];
  readonly #middleware: MiddlewareFn<C>;

  constructor(...middleware: Array<Middleware<C>>) {
    super();
    const steps: Step<C>[] = middleware.map((each) => ({ test: null, run: flatten(each) }));
    this.#steps = steps;
    this.#middleware = (ctx, next) => walk(steps, 0, ctx, next);
  }

  override middleware(): MiddlewareFn<C> {
    return this.#middleware;
  }

  override use(...middleware: Array<Middleware<C>>): Composer<C> {
    const composer = new BotComposer<C>(...middleware);
    this.#steps.push({ test: null, run: composer.#middleware });
    return composer;
  }

  override filter<D extends C>(
    predicate: (ctx: C) => ctx is D,
    ...middleware: Array<Middleware<D>>
  ): Composer<D>;
  override filter(
    predicate: (ctx: C) => MaybePromise<boolean>,
    ...middleware: Array<Middleware<C>>
  ): Composer<C>;
  override filter(
    predicate: (ctx: C) => MaybePromise<boolean>,
    ...middleware: Array<Middleware<C>>
  ): Composer<C> {
    const composer = new BotComposer<C>(...middleware);
    this.#steps.push({ test: predicate, run: composer.#middleware });
    return composer;
  }
}

/** grammY's `flatten`: a composer's middleware is asked for at each call, as it may change. */
function flatten<C extends Context>(middleware: Middleware<C>): MiddlewareFn<C> {
  if (typeof middleware === "function") return middleware;
  if (middleware instanceof BotComposer) return middleware.middleware();
  return (ctx, next) => middleware.middleware()(ctx, next);
}

/** Runs the first step from `from` whose predicate holds; `next` once the steps run out. */
function walk<C extends Context>(
  steps: Step<C>[],
  from: number,
  ctx: C,
  next: NextFunction,
): Promise<void> {
  for (let index = from; index < steps.length; index++) {
    const { test } = steps[index]!;
    if (test === null) return enter(steps, index, ctx, next);
    let passes: unknown;
    try {
      passes = test(ctx);
    } catch (error) {
      return Promise.reject(error);
    }
    if (isThenable(passes)) {
      return Promise.resolve(passes).then((ok) =>
        ok ? enter(steps, index, ctx, next) : walk(steps, index + 1, ctx, next)
      );
    }
    if (passes) return enter(steps, index, ctx, next);
  }
  return next();
}

/** Runs step `index`, its `next` walking on from the step after it. */
function enter<C extends Context>(
  steps: Step<C>[],
  index: number,
  ctx: C,
  next: NextFunction,
): Promise<void> {
  let called = false;
  try {
    const result = steps[index]!.run(ctx, () => {
      if (called) return Promise.reject(new Error("`next` already called before!"));
      called = true;
      return walk(steps, index + 1, ctx, next);
    });
    // grammY's chain resolves to nothing; what a handler's promise resolves to is never read.
    return isThenable(result) ? Promise.resolve(result) as Promise<void> : RESOLVED;
  } catch (error) {
    return Promise.reject(error);
  }
}

const RESOLVED: Promise<void> = Promise.resolve();

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === "function";
}
