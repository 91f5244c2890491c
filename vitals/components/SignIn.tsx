"use client";
import { useState } from "react";
import { DEFAULT_UPLOAD_ENDPOINT, loadUploadEndpoint, tokenProblem } from "@/lib/auth";

interface Props {
  onSignIn: (token: string, uploadEndpoint: string) => void;
}

/** Sign-in with an access token (in dev: the `login token` pulsevault dev prints). */
export default function SignIn({ onSignIn }: Props) {
  const [token, setToken] = useState("");
  const [endpoint, setEndpoint] = useState(() => (typeof window === "undefined" ? DEFAULT_UPLOAD_ENDPOINT : loadUploadEndpoint()));
  const [problem, setProblem] = useState<string | null>(null);
  return (
    <main className="grid min-h-dvh place-items-center p-6">
      <form
        className="w-full max-w-sm space-y-4"
        aria-labelledby="signin-title"
        onSubmit={(e) => {
          e.preventDefault();
          const p = tokenProblem(token, Date.now() / 1000);
          setProblem(p);
          if (!p) onSignIn(token.trim(), endpoint.trim() || DEFAULT_UPLOAD_ENDPOINT);
        }}
      >
        <h1 id="signin-title" className="text-2xl font-semibold">
          Vitals
        </h1>
        <p className="text-sm text-neutral-300">Sign in with your PulseVault access token. In development, `pulsevault dev` prints one.</p>
        <div>
          <label htmlFor="token" className="block text-sm font-medium">
            Access token
          </label>
          <textarea
            id="token"
            name="token"
            rows={4}
            autoComplete="off"
            spellCheck={false}
            className="mt-1 w-full rounded border border-neutral-600 bg-neutral-900 p-2 font-mono text-xs"
            value={token}
            onChange={(e) => setToken(e.target.value)}
            aria-invalid={problem ? true : undefined}
            aria-describedby={problem ? "token-problem" : undefined}
          />
        </div>
        {problem && (
          <p id="token-problem" role="alert" className="text-sm text-red-300">
            {problem}
          </p>
        )}
        <details className="text-sm">
          <summary>Advanced</summary>
          <label htmlFor="endpoint" className="mt-2 block">
            Upload endpoint (tus)
          </label>
          <input
            id="endpoint"
            name="endpoint"
            className="mt-1 w-full rounded border border-neutral-600 bg-neutral-900 p-2 font-mono text-xs"
            value={endpoint}
            onChange={(e) => setEndpoint(e.target.value)}
          />
        </details>
        <button type="submit" className="btn btn-primary w-full">
          Sign in
        </button>
      </form>
    </main>
  );
}
