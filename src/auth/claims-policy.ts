import type { AccountSummary, Claims } from "../events.js";

/** The ID-token claims MSAL builds each account field from: a field is kept only when one of them may leave. */
const ACCOUNT_SOURCES: Record<"name" | "username" | "homeAccountId", readonly string[]> = {
  name: ["name"],
  username: ["preferred_username", "email", "emails", "upn"],
  homeAccountId: ["oid", "sub"],
};

/**
 * `EDGE_SIGNIN_CLAIMS`: only the listed claims leave the device (undefined = all). The account summary is
 * derived from the same claims, so its fields follow the same policy; otherwise `name` would leak through it.
 */
export function applyClaimsPolicy(
  claims: Claims,
  account: AccountSummary,
  allowed: readonly string[] | undefined,
): { claims: Claims; account: AccountSummary } {
  if (!allowed) return { claims, account };
  const keep = new Set(allowed);
  const kept = (field: keyof typeof ACCOUNT_SOURCES) =>
    ACCOUNT_SOURCES[field].some((claim) => keep.has(claim));
  return {
    claims: Object.fromEntries(Object.entries(claims).filter(([name]) => keep.has(name))),
    account: {
      ...account,
      name: kept("name") ? account.name : "",
      username: kept("username") ? account.username : "",
      homeAccountId: kept("homeAccountId") ? account.homeAccountId : "",
    },
  };
}
