"use client";
// The redirect URI: finishes the code flow (state, PKCE verifier, token
// request) and returns to the feed without the code in the address bar.
import { useEffect, useState } from "react";
import { loadOidcConfig, userManager } from "@/lib/oidc";

export default function Callback() {
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => {
    (async () => {
      const cfg = await loadOidcConfig();
      if (!cfg) throw new Error("This deployment has no sign-in issuer.");
      await userManager(cfg).signinRedirectCallback();
      window.location.replace("/");
    })().catch(() => setProblem("Signing in did not finish. The link may have expired or been used already."));
  }, []);
  return (
    <main className="grid min-h-dvh place-items-center p-6">
      {problem ? (
        <div className="max-w-sm space-y-4">
          <p role="alert">{problem}</p>
          <a href="/" className="btn btn-primary">
            Sign in again
          </a>
        </div>
      ) : (
        <p role="status">Signing in…</p>
      )}
    </main>
  );
}
