/**
 * A command's statement made ready to run: decoded, lexed, checked and its placeholders bound.
 * Preparing depends only on the command, so every replica prepares the same text or refuses
 * with the same message.
 */
import { StoreError } from "../../errors/index.js";
import type { StoreCommand } from "../store.js";
import { bind, paramsOf } from "./placeholders.js";
import { Refusal } from "./refusal.js";
import { checkLoad, classifySave } from "./statement-classifier.js";
import type { SaveKind } from "./statement-classifier.js";
import { lex } from "./sql-lexer.js";

/** A save ready to run: how it runs, and its text with the placeholders bound. */
export interface PreparedSave {
  readonly kind: SaveKind;
  readonly sql: string;
}

/** Why a save is not run: its message is the entry's error result. */
export interface RefusedSave {
  readonly refusal: string;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A save's statement ready to run, or the reason it is refused (not valid UTF-8, a statement
 * that is not replicated, a wrong `args.params`). Anything else thrown is a bug (the fuzz tests
 * look for one).
 */
export function prepareSave(command: StoreCommand): PreparedSave | RefusedSave {
  let text: string;
  try {
    text = utf8.decode(command.data);
  } catch {
    return { refusal: "the statement is not valid UTF-8" };
  }
  try {
    const tokens = lex(text);
    const kind = classifySave(tokens);
    return { kind, sql: bind(text, tokens, paramsOf(command.args["params"])) };
  } catch (err) {
    if (err instanceof Refusal) return { refusal: err.message };
    throw err;
  }
}

/** A load's statement ready to run. Throws StoreError saying why it is not one read. */
export function prepareLoad(command: StoreCommand): string {
  try {
    const text = new TextDecoder().decode(command.data);
    const tokens = lex(text);
    checkLoad(tokens);
    return bind(text, tokens, paramsOf(command.args["params"]));
  } catch (err) {
    if (err instanceof Refusal) throw new StoreError(err.message);
    throw err;
  }
}
