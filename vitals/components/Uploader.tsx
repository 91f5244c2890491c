"use client";
// Pick, drop or record a video and send it with tus: progress (percent, speed,
// ETA), pause/resume, and resume after a reload through the tus fingerprint
// (lib/tus.ts keeps the upload URL only, never the file name, for 24 h).
import { useCallback, useEffect, useReducer, useRef, useState } from "react";
import * as tus from "tus-js-client";
import { tusOptions } from "@/lib/tus";
import {
  describeFailure,
  formatBytes,
  formatEta,
  idleUpload,
  percent,
  uploadReducer,
  validateFile,
} from "@/lib/upload";

interface Props {
  token: string;
  endpoint: string;
  onDone: () => void;
  onClose: () => void;
}

export default function Uploader({ token, endpoint, onDone, onClose }: Props) {
  const [s, dispatch] = useReducer(uploadReducer, idleUpload);
  const [pick, setPick] = useState<string | null>(null);
  const [over, setOver] = useState(false);
  const up = useRef<tus.Upload | null>(null);
  const input = useRef<HTMLInputElement>(null);

  useEffect(() => () => void up.current?.abort(), []);

  const start = useCallback(
    async (file: File) => {
      const bad = validateFile(file);
      setPick(bad);
      if (bad) return;
      up.current?.abort();
      const abs = new URL(endpoint, window.location.href).toString();
      const u = new tus.Upload(
        file,
        tusOptions(file, abs, token, {
          onProgress: (bytes, total) => dispatch({ type: "progress", bytes, total, now: performance.now() }),
          onSuccess: () => {
            dispatch({ type: "success" });
            onDone();
          },
          onError: (err) => {
            const status = (err as tus.DetailedError).originalResponse?.getStatus() ?? null;
            dispatch({ type: "fail", message: describeFailure(status, navigator.onLine) });
          },
        }),
      );
      up.current = u;
      const previous = await u.findPreviousUploads();
      if (previous.length > 0) u.resumeFromPreviousUpload(previous[0]);
      dispatch({ type: "start", total: file.size, now: performance.now(), resumed: previous.length > 0 });
      u.start();
    },
    [token, endpoint, onDone],
  );

  const pct = percent(s);
  return (
    <div role="dialog" aria-modal="true" aria-labelledby="upload-title" className="fixed inset-0 z-20 grid place-items-center bg-black/70 p-4">
      <div className="w-full max-w-md rounded-xl bg-neutral-900 p-5 shadow-xl">
        <div className="mb-4 flex items-center justify-between">
          <h2 id="upload-title" className="text-lg font-semibold">
            Upload a video
          </h2>
          <button type="button" className="btn" onClick={onClose} aria-label="Close upload">
            ✕
          </button>
        </div>
        <label
          className={`block cursor-pointer rounded-lg border-2 border-dashed p-6 text-center ${over ? "border-teal-400" : "border-neutral-600"}`}
          onDragOver={(e) => {
            e.preventDefault();
            setOver(true);
          }}
          onDragLeave={() => setOver(false)}
          onDrop={(e) => {
            e.preventDefault();
            setOver(false);
            const f = e.dataTransfer.files[0];
            if (f) void start(f);
          }}
        >
          <span>Drop a video here, or choose / record one</span>
          <input
            ref={input}
            type="file"
            accept="video/*"
            capture="environment"
            className="sr-only"
            aria-label="Choose a video"
            disabled={s.phase === "uploading"}
            onChange={(e) => {
              const f = e.target.files?.[0];
              if (f) void start(f);
              e.target.value = "";
            }}
          />
        </label>
        {pick && (
          <p role="alert" className="mt-3 text-sm text-red-300">
            {pick}
          </p>
        )}
        {s.phase !== "idle" && (
          <div className="mt-4" data-upload-phase={s.phase}>
            <div
              role="progressbar"
              aria-label="Upload progress"
              aria-valuemin={0}
              aria-valuemax={100}
              aria-valuenow={pct}
              className="h-3 w-full overflow-hidden rounded bg-neutral-700"
            >
              <div className="h-full bg-teal-400 transition-[width] motion-reduce:transition-none" style={{ width: `${pct}%` }} />
            </div>
            <p className="mt-2 text-sm tabular-nums" aria-live="polite">
              {pct} % · {formatBytes(s.bytes)} of {formatBytes(s.total)}
              {s.phase === "uploading" && ` · ${formatBytes(s.speed)}/s · ${formatEta(s.eta)} left`}
              {s.phase === "paused" && " · paused"}
              {s.phase === "done" && " · uploaded; it appears in the feed as processing"}
              {s.resumed && s.phase !== "done" && " · resumed"}
            </p>
            {s.error && (
              <p role="alert" className="mt-2 text-sm text-red-300">
                {s.error}
              </p>
            )}
            <div className="mt-3 flex gap-2">
              {s.phase === "uploading" && (
                <button
                  type="button"
                  className="btn"
                  onClick={() => {
                    void up.current?.abort();
                    dispatch({ type: "pause" });
                  }}
                >
                  Pause
                </button>
              )}
              {(s.phase === "paused" || s.phase === "error") && (
                <button
                  type="button"
                  className="btn"
                  onClick={() => {
                    dispatch({ type: "resume", now: performance.now() });
                    up.current?.start();
                  }}
                >
                  Resume
                </button>
              )}
              {s.phase === "done" && (
                <button type="button" className="btn" onClick={() => dispatch({ type: "reset" })}>
                  Upload another
                </button>
              )}
            </div>
          </div>
        )}
      </div>
    </div>
  );
}
