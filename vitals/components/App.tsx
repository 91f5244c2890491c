"use client";
import { useCallback, useEffect, useState, useSyncExternalStore } from "react";
import { AnimatePresence, motion, useReducedMotion } from "motion/react";
import { isOffline, subscribeNetwork } from "@/lib/api";
import { clearToken, loadToken, loadUploadEndpoint, saveToken, saveUploadEndpoint } from "@/lib/auth";
import Feed from "./Feed";
import SignIn from "./SignIn";
import Uploader from "./Uploader";

/** The app shell: sign-in, then the feed with an upload dialog. */
export default function App() {
  const [token, setToken] = useState<string | null>(null);
  const [endpoint, setEndpoint] = useState("");
  const [loaded, setLoaded] = useState(false);
  const [uploading, setUploading] = useState(false);
  const [uploads, setUploads] = useState(0);
  const online = !useSyncExternalStore(subscribeNetwork, isOffline, () => false);
  const reduced = useReducedMotion();

  useEffect(() => {
    setToken(loadToken());
    setEndpoint(loadUploadEndpoint());
    setLoaded(true);
    if ("serviceWorker" in navigator) navigator.serviceWorker.register("/sw.js").catch(() => {});
  }, []);

  const signOut = useCallback(() => {
    clearToken();
    setToken(null);
  }, []);

  if (!loaded) return <OfflineBanner online={online} />;
  return (
    <>
      <OfflineBanner online={online} />
      {!token ? (
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
            <nav className="flex gap-2" aria-label="Account">
              <button type="button" className="btn btn-primary" onClick={() => setUploading(true)}>
                Upload
              </button>
              <button type="button" className="btn" onClick={signOut}>
                Sign out
              </button>
            </nav>
          </header>
          <Feed token={token} onUnauthorized={signOut} uploads={uploads} />
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
