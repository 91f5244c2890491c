"use client";

interface Props {
  onSignIn: () => void;
  /** Why the person is asked again (an ended session), if so. */
  reason?: string | null;
}

/** The sign-in prompt: a redirect to the organisation's sign-in page. */
export default function OidcSignIn({ onSignIn, reason }: Props) {
  return (
    <main className="grid min-h-dvh place-items-center p-6">
      <div className="w-full max-w-sm space-y-4">
        <h1 className="text-2xl font-semibold">Vitals</h1>
        {reason && (
          <p role="alert" className="text-sm text-amber-300">
            {reason}
          </p>
        )}
        <p className="text-sm text-neutral-300">Sign in with your organisation&apos;s account to see and upload videos.</p>
        <button type="button" className="btn btn-primary w-full" onClick={onSignIn} data-signin>
          Sign in
        </button>
      </div>
    </main>
  );
}
