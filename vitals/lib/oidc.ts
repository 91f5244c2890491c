// OpenID Connect sign-in (authorization code + PKCE, by oidc-client-ts):
// tokens live in memory and sessionStorage only (gone with the tab), are
// refreshed with the rotating refresh token before they expire, and sign-out
// ends the session at the issuer too.
import { UserManager, WebStorageStateStore, type User } from "oidc-client-ts";

/** What the deployment tells Vitals about its issuer (/vitals-config.json). */
export interface OidcConfig {
  issuer: string;
  client_id: string;
}

/** The issuer configuration, or null when the API takes pasted tokens (scripts' HS256 mode). */
export async function loadOidcConfig(fetchImpl: typeof fetch = fetch): Promise<OidcConfig | null> {
  try {
    const r = await fetchImpl("/vitals-config.json", { cache: "no-store" });
    if (!r.ok) return null;
    const c = (await r.json()) as Partial<OidcConfig>;
    return c.issuer && c.client_id ? { issuer: c.issuer, client_id: c.client_id } : null;
  } catch {
    return null;
  }
}

/** The exact redirect URIs registered at the issuer for this origin. */
export function redirectURIs(origin: string) {
  return { redirect_uri: origin + "/auth/callback", post_logout_redirect_uri: origin + "/" };
}

let current: { key: string; mgr: UserManager } | null = null;

/** The one UserManager of this page for cfg. */
export function userManager(cfg: OidcConfig): UserManager {
  const key = cfg.issuer + " " + cfg.client_id;
  if (current?.key === key) return current.mgr;
  const store = new WebStorageStateStore({ store: sessionStorage });
  const mgr = new UserManager({
    authority: cfg.issuer,
    client_id: cfg.client_id,
    ...redirectURIs(window.location.origin),
    response_type: "code",
    scope: "openid profile offline_access",
    userStore: store,
    stateStore: store,
    automaticSilentRenew: true, // with a refresh token: the token endpoint, no iframe
    accessTokenExpiringNotificationTimeInSeconds: 10,
    monitorSession: false,
    loadUserInfo: false,
  });
  current = { key, mgr };
  return mgr;
}

/** Who is signed in, for the header. */
export function displayName(u: User): string {
  return (u.profile.name as string | undefined) || (u.profile.preferred_username as string | undefined) || u.profile.sub;
}
