// Shell quoting for everything the renderer substitutes into scripts, config and crontab.
// ONE function quotes values (`shq`); the others only compose it. Pure.

/**
 * Quote a value for bash so that it is read back as exactly this string, whatever it contains
 * (spaces, quotes, `$`, backticks, newlines, globs, non-ASCII): single quotes, with each embedded
 * single quote written as '\''. The empty string becomes ''. NUL cannot be represented in a
 * shell word and is rejected.
 */
export function shq(value: string): string {
  if (value.includes("\0")) throw new Error("shq: a shell word cannot contain NUL");
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** A bash array literal: ('a' 'b c'); () when empty. Every element quoted by shq. */
export function shArray(values: readonly string[]): string {
  return `(${values.map(shq).join(" ")})`;
}

const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** NAME='value' or NAME=('a' 'b'): one bash assignment line. */
export function shAssign(name: string, value: string | number | readonly string[]): string {
  if (!SHELL_NAME.test(name)) throw new Error(`shAssign: "${name}" is not a shell variable name`);
  if (Array.isArray(value)) return `${name}=${shArray(value as readonly string[])}`;
  return `${name}=${shq(String(value))}`;
}

/**
 * Cron treats an unescaped `%` in the command as a newline (and passes the rest as stdin), so
 * every `%` in a crontab command must be written as `\%`. Apply to a command that is already
 * shell-quoted.
 */
export function cronEscape(command: string): string {
  if (/[\r\n]/.test(command)) throw new Error("cronEscape: a crontab command cannot span lines");
  return command.replace(/%/g, "\\%");
}
