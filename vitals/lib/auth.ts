// Sign-in state. The API token lives in sessionStorage (gone with the tab) and
// in memory, never in a URL: URLs end up in logs and history.

const TOKEN_KEY = "pulsevault.token";
const ENDPOINT_KEY = "pulsevault.uploadEndpoint";

/** The default tus endpoint: the upload function behind the public origin. */
export const DEFAULT_UPLOAD_ENDPOINT = "/api/upload/";

export interface Claims {
  sub?: string;
  exp?: number;
  roles?: string[];
}

/** Decodes a JWT's claims without verifying them (the server verifies). */
export function decodeClaims(jwt: string): Claims | null {
  const parts = jwt.trim().split(".");
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    const c = JSON.parse(json);
    return typeof c === "object" && c !== null ? (c as Claims) : null;
  } catch {
    return null;
  }
}

/** Why a token cannot be used, or null when it looks usable. */
export function tokenProblem(jwt: string, nowSec: number): string | null {
  if (!jwt.trim()) return "Paste your access token.";
  const c = decodeClaims(jwt);
  if (!c) return "That is not a valid access token.";
  if (typeof c.exp === "number" && c.exp <= nowSec) return "That token has expired; ask for a new one.";
  return null;
}

function session(): Storage | null {
  try {
    return typeof sessionStorage === "undefined" ? null : sessionStorage;
  } catch {
    return null;
  }
}

function local(): Storage | null {
  try {
    return typeof localStorage === "undefined" ? null : localStorage;
  } catch {
    return null;
  }
}

export function loadToken(): string | null {
  return session()?.getItem(TOKEN_KEY) ?? null;
}

export function saveToken(jwt: string): void {
  session()?.setItem(TOKEN_KEY, jwt.trim());
}

export function clearToken(): void {
  session()?.removeItem(TOKEN_KEY);
}

/** Where uploads go; a deployment may put the tus endpoint on another origin. */
export function loadUploadEndpoint(): string {
  return local()?.getItem(ENDPOINT_KEY) || DEFAULT_UPLOAD_ENDPOINT;
}

export function saveUploadEndpoint(url: string): void {
  const v = url.trim();
  if (!v || v === DEFAULT_UPLOAD_ENDPOINT) local()?.removeItem(ENDPOINT_KEY);
  else local()?.setItem(ENDPOINT_KEY, v);
}
