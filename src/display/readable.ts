/**
 * Codes and addresses as a person reads them off a screen and types them on a phone.
 */

/**
 * A user code in groups for reading: the provider's own grouping when it has one (`WDJB-MJHT`), else groups of
 * four or three as the length divides (`GTK8ZJ2LA` -> `GTK 8ZJ 2LA`, `ABCDEFGH` -> `ABCD EFGH`), as the TV
 * activation screens do. Typing the code without the gaps works: RFC 8628 6.1 has providers ignore them.
 */
export function codeGroups(userCode: string): string[] {
  const given = userCode.split(/[\s-]+/).filter(Boolean);
  if (given.length > 1) return given;
  const chars = [...userCode];
  if (chars.length <= 5) return [userCode];
  const size = chars.length % 4 === 0 ? 4 : chars.length % 3 === 0 ? 3 : 4;
  const groups: string[] = [];
  for (let i = 0; i < chars.length; i += size) groups.push(chars.slice(i, i + size).join(""));
  return groups;
}

/**
 * An address as shown: without `https://` (every browser adds it) and without a trailing slash, cut into the
 * pieces between which a line may break: after each `/` and before each `.`, never inside a name (a hyphen in
 * `my-tenant.ciamlogin.com` is no place to break: it reads like hyphenation). Other schemes stay visible.
 */
export function urlParts(url: string): string[] {
  const shown = url.replace(/^https:\/\//i, "").replace(/\/$/, "");
  return shown.split(/(?<=\/)|(?=\.)/).filter(Boolean);
}
