/**
 * Typed dialogs on top of `ctx.dialog`: a dialog names its steps and the schema of the data it
 * collects; features enter it, move between steps, read and update its data, and leave it,
 * and choose handlers by step with `composer.filter(dialog.at("step"), …)`.
 *
 * ```ts
 * const form = defineDialog({
 *   name: "form",
 *   steps: ["name", "age"],
 *   schema: z.object({ name: z.string().optional() }),
 * });
 * feature.command("form", (ctx) => { form.enter(ctx, "name", {}); return ctx.reply("Name?"); });
 * feature.filter(form.at("name")).on("message:text", (ctx) => {
 *   form.go(ctx, "age", { name: ctx.message.text });
 *   return ctx.reply("Age?");
 * });
 * ```
 *
 * State is stored as `name:step`; data as JSON. The dialogs stage (`guard.ts`) resets a stored
 * state that no longer fits its dialog (after an upgrade) before any feature sees it.
 */
import type { z } from "zod";
import type { Json } from "../../store/store.ts";
import type { BotContext } from "../context.ts";

/** What {@link defineDialog} needs. */
export interface DialogSpec<Step extends string, Data> {
  /** Unique among the bot's dialogs; part of the stored state name. */
  name: string;
  /** The steps, in no particular order. */
  steps: readonly Step[];
  /** The data the dialog collects; stored data that fails it resets the dialog. */
  schema: z.ZodType<Data>;
}

/** Where a user is in a dialog. */
export interface DialogPosition<Step extends string, Data> {
  step: Step;
  data: Data;
}

/** A dialog definition; see the module documentation. */
export interface Dialog<Step extends string = string, Data = unknown> {
  readonly name: string;
  readonly steps: readonly Step[];
  /** Whether the stored `state` names this dialog (any step, known or not). */
  owns(state: string): boolean;
  /** The position that `state` and `data` describe, or null when they don't fit this dialog. */
  parse(state: string, data: Json): DialogPosition<Step, Data> | null;
  /** Where the sender is in this dialog, or null when elsewhere. */
  current(ctx: BotContext): DialogPosition<Step, Data> | null;
  /** A filter that lets an update through when the sender is at `step` of this dialog. */
  at(...steps: Step[]): (ctx: BotContext) => boolean;
  /** Starts the dialog at `step` (or restarts it). */
  enter(ctx: BotContext, step: Step, data: Data): void;
  /** Moves to `step`, replacing the data when given. */
  go(ctx: BotContext, step: Step, data?: Data): void;
  /** Merges `patch` into the data, staying at the current step. */
  update(ctx: BotContext, patch: Partial<Data>): void;
  /** Leaves the dialog (no-op when not in it). */
  leave(ctx: BotContext): void;
}

/** Defines a dialog. */
export function defineDialog<const Step extends string, Data>(
  spec: DialogSpec<Step, Data>,
): Dialog<Step, Data> {
  const prefix = `${spec.name}:`;
  const steps: readonly string[] = spec.steps;

  function parse(state: string, data: Json): DialogPosition<Step, Data> | null {
    if (!state.startsWith(prefix)) return null;
    const step = state.slice(prefix.length);
    if (!steps.includes(step)) return null;
    const parsed = spec.schema.safeParse(data);
    return parsed.success ? { step: step as Step, data: parsed.data } : null;
  }

  function current(ctx: BotContext): DialogPosition<Step, Data> | null {
    const state = ctx.dialog.state;
    return state === null ? null : parse(state, ctx.dialog.data);
  }

  function store(ctx: BotContext, step: Step, data: Data): void {
    ctx.dialog.set(`${prefix}${step}`, spec.schema.parse(data) as Json);
  }

  return {
    name: spec.name,
    steps: spec.steps,
    owns: (state) => state.startsWith(prefix),
    parse,
    current,
    at: (...wanted) => (ctx) => {
      const position = current(ctx);
      return position !== null && wanted.includes(position.step);
    },
    enter: store,
    go(ctx, step, data) {
      const position = current(ctx);
      if (data === undefined && position === null) {
        throw new Error(`dialog ${spec.name}: go("${step}") without data outside the dialog`);
      }
      store(ctx, step, data ?? position!.data);
    },
    update(ctx, patch) {
      const position = current(ctx);
      if (position === null) throw new Error(`dialog ${spec.name}: update() outside the dialog`);
      store(ctx, position.step, { ...position.data, ...patch });
    },
    leave(ctx) {
      if (
        current(ctx) !== null || (ctx.dialog.state !== null && ctx.dialog.state.startsWith(prefix))
      ) {
        ctx.dialog.clear();
      }
    },
  };
}
