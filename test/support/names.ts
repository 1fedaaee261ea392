/**
 * Names the config schema accepts and refuses (NAME_RULES in infra/config/schema.ts), one table
 * for every test that proves "a name the schema accepts works everywhere, safely quoted". Each
 * class of the rule is represented: hyphens, `$`, leading `_`, mixed case, one character, the
 * longest allowed, digits first (Docker), dots (Docker); the refused ones include shell and SQL
 * metacharacters that would do harm if anything spliced them unquoted.
 */

/** PostgreSQL database and role names. */
export const PG_ACCEPTED = ["my-app", "app$1", "_under", "MixedCase", "a", "db-", "A_b-9$c", `n${"x".repeat(62)}`];
/** PWNED is the marker an injected command would create in the working directory. */
export const PG_REFUSED = ["1app", "a b", "x;touch PWNED", "$(touch PWNED)", "`touch PWNED`", "x".repeat(64), "-x", "é", "a'b", 'a"b', "a.b", ""];

/** Docker volume (and container) names. */
export const DOCKER_ACCEPTED = ["app-uploads", "2fa.data", "a_b", "9x", "Ab.c-d_e"];
export const DOCKER_REFUSED = ["a", "-v", "../etc", "a:b", "x y", ".hidden", "_x", "$(touch PWNED)", "é-x"];
