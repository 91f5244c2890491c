import { describe, expect, it } from "vitest";
import { loadOidcConfig, redirectURIs } from "./oidc";

const answer = (status: number, body: unknown) => (async () => new Response(JSON.stringify(body), { status })) as unknown as typeof fetch;

describe("oidc config", () => {
  it("uses the issuer the deployment names, else none (pasted tokens)", async () => {
    expect(await loadOidcConfig(answer(200, { issuer: "http://x/oidc", client_id: "pulsevault-vitals" }))).toEqual({
      issuer: "http://x/oidc",
      client_id: "pulsevault-vitals",
    });
    expect(await loadOidcConfig(answer(200, { issuer: "", client_id: "pulsevault-vitals" }))).toBeNull();
    expect(await loadOidcConfig(answer(404, {}))).toBeNull();
    expect(await loadOidcConfig((async () => Promise.reject(new Error("offline"))) as unknown as typeof fetch)).toBeNull();
  });

  it("registers the exact redirect URIs of the README", () => {
    expect(redirectURIs("https://clinic.example")).toEqual({
      redirect_uri: "https://clinic.example/auth/callback",
      post_logout_redirect_uri: "https://clinic.example/",
    });
  });
});
