"use client";
import { useCallback, useEffect, useState, useSyncExternalStore } from "react";
import { AnimatePresence, motion, useReducedMotion } from "motion/react";
import { isOffline, subscribeNetwork } from "@/lib/api";
import type { UserManager } from "oidc-client-ts";
import { clearToken, loadToken, loadUploadEndpoint, saveToken, saveUploadEndpoint } from "@/lib/auth";
import { displayName, loadOidcConfig, userManager } from "@/lib/oidc";
import Feed from "./Feed";
import OidcSignIn from "./OidcSignIn";
import SignIn from "./SignIn";
import Uploader from "./Uploader";

const ENDED = "Your session has ended. Sign in again to continue.";

/**
 * The app shell: sign-in, then the feed with an upload dialog. With an
 * OpenID issuer (/vitals-config.json) sign-in is a redirect to it and the
 * access token is refreshed silently; without one (the scripts' HS256 mode)
 * a pasted token is used.
 */
export default function App() {
  const [token, setToken] = useState<string | null>(null);
  const [who, setWho] = useState<string | null>(null);
  const [mgr, setMgr] = useState<UserManager | null>(null);
  const [ended, setEnded] = useState<string | null>(null);
  const [endpoint, setEndpoint] = useState("");
  const [loaded, setLoaded] = useState(false);
  const [uploading, setUploading] = useState(false);
  const [uploads, setUploads] = useState(0);
  const online = !useSyncExternalStore(subscribeNetwork, isOffline, () => false);
  const reduced = useReducedMotion();

  useEffect(() => {
    let cancelled = false;
    setEndpoint(loadUploadEndpoint());
    if ("serviceWorker" in navigator) navigator.serviceWorker.register("/sw.js").catch(() => {});
    (async () => {
      const cfg = await loadOidcConfig();
      if (cancelled) return;
      if (!cfg) {
        setToken(loadToken());
        setLoaded(true);
        return;
      }
      const m = userManager(cfg);
      m.events.addUserLoaded((u) => {
        setToken(u.access_token);
        setWho(displayName(u));
      });
      m.events.addSilentRenewError(() => {
        void m.removeUser();
        setToken(null);
        setEnded(ENDED);
      });
      setMgr(m);
      let u = await m.getUser();
      if (u?.expired && u.refresh_token) u = await m.signinSilent().catch(() => null);
      if (cancelled) return;
      if (u && !u.expired) {
        setToken(u.access_token);
        setWho(displayName(u));
      }
      setLoaded(true);
    })();
    return () => {
      cancelled = true;
    };
  }, []);

  const signOut = useCallback(() => {
    clearToken();
    setToken(null);
    if (mgr) void mgr.signoutRedirect().catch(() => mgr.removeUser());
  }, [mgr]);

  // A token the API refused: refresh once; if that fails, ask to sign in.
  const unauthorized = useCallback(() => {
    if (!mgr) {
      clearToken();
      setToken(null);
      return;
    }
    mgr.signinSilent().catch(() => {
      void mgr.removeUser();
      setToken(null);
      setEnded(ENDED);
    });
  }, [mgr]);

  if (!loaded) return <OfflineBanner online={online} />;
  return (
    <>
      <OfflineBanner online={online} />
      {!token && mgr ? (
        <OidcSignIn reason={ended} onSignIn={() => void mgr.signinRedirect()} />
      ) : !token ? (
        <SignIn
          onSignIn={(t, ep) => {
            saveToken(t);
            saveUploadEndpoint(ep);
            setEndpoint(loadUploadEndpoint());
            setToken(t);
          }}
        />
      ) : (
        <>
          <header className="fixed inset-x-0 top-0 z-10 flex items-center justify-between bg-gradient-to-b from-black/70 to-transparent p-3">
            <h1 className="text-lg font-semibold">Vitals</h1>
            <nav className="flex items-center gap-2" aria-label="Account">
              {who && (
                <span className="text-sm" data-who>
                  Signed in as {who}
                </span>
              )}
              <button type="button" className="btn btn-primary" onClick={() => setUploading(true)}>
                Upload
              </button>
              <button type="button" className="btn" onClick={signOut}>
                Sign out
              </button>
            </nav>
          </header>
          <Feed token={token} onUnauthorized={unauthorized} uploads={uploads} />
          <AnimatePresence>
            {uploading && (
              <motion.div
                initial={reduced ? false : { opacity: 0 }}
                animate={{ opacity: 1 }}
                exit={reduced ? undefined : { opacity: 0 }}
              >
                <Uploader token={token} endpoint={endpoint} onDone={() => setUploads((n) => n + 1)} onClose={() => setUploading(false)} />
              </motion.div>
            )}
          </AnimatePresence>
        </>
      )}
    </>
  );
}

function OfflineBanner({ online }: { online: boolean }) {
  if (online) return null;
  return (
    <p role="status" data-offline className="fixed inset-x-0 top-0 z-30 bg-amber-600 p-2 text-center text-sm font-medium text-black">
      You are offline. Videos and uploads need a connection.
    </p>
  );
}
