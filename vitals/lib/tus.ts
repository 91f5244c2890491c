// Resumable uploads: the tus-js-client options Vitals uploads with, and the
// storage that lets an upload resume after a reload without keeping PHI.
// tus-js-client's own storage keeps the upload's metadata (the file name) and
// URL in localStorage until the upload succeeds, so an abandoned upload left
// them there for good.
import * as tus from "tus-js-client";
import { fingerprint } from "./upload";

type UrlStorage = NonNullable<tus.Upload["options"]["urlStorage"]>;
type PreviousUpload = Awaited<ReturnType<UrlStorage["findAllUploads"]>>[number];

/**
 * How long a started upload can be resumed: the server's UPLOAD_EXPIRY
 * (stack.yml, 24 h), after which it has forgotten the upload anyway.
 */
export const RESUME_TTL_MS = 24 * 60 * 60 * 1000;

const PREFIX = "pulsevault.tus::";
/** tus-js-client's default storage, which earlier Vitals used. */
const LEGACY_PREFIX = "tus::";

/** What an entry holds: enough to resume, nothing about the file itself. */
interface Entry {
  url: string;
  size: number | null;
  created: number; // ms since the epoch
}

/**
 * A tus URL storage that keeps, per started upload, its URL, size and start
 * time only (never the metadata), in sessionStorage (gone with the tab, like
 * the sign-in token), and drops entries older than RESUME_TTL_MS.
 */
export class ResumeStore implements UrlStorage {
  constructor(
    private readonly store: Storage | null,
    private readonly now: () => number = Date.now,
    private readonly ttlMs = RESUME_TTL_MS,
  ) {}

  async findAllUploads(): Promise<PreviousUpload[]> {
    return this.entries("");
  }

  async findUploadsByFingerprint(fp: string): Promise<PreviousUpload[]> {
    return this.entries(fp + "::");
  }

  async removeUpload(key: string): Promise<void> {
    if (key.startsWith(PREFIX)) this.store?.removeItem(key);
  }

  async addUpload(fp: string, upload: PreviousUpload): Promise<string> {
    this.prune();
    if (!this.store || !upload.uploadUrl) return "";
    // Only tells entries apart (tus-js-client does the same); randomUUID needs a secure context.
    const key = `${PREFIX}${fp}::${Math.random().toString(36).slice(2)}${this.now().toString(36)}`;
    const e: Entry = { url: upload.uploadUrl, size: upload.size, created: this.now() };
    try {
      this.store.setItem(key, JSON.stringify(e));
    } catch {
      return ""; // storage full or refused: the upload goes on, it just cannot resume
    }
    return key;
  }

  /** The live entries under PREFIX+sub, after dropping expired and malformed ones. */
  private entries(sub: string): PreviousUpload[] {
    this.prune();
    const out: PreviousUpload[] = [];
    for (const [key, e] of this.read()) {
      if (!key.startsWith(PREFIX + sub)) continue;
      out.push({
        size: e.size,
        metadata: {},
        creationTime: new Date(e.created).toISOString(),
        urlStorageKey: key,
        uploadUrl: e.url,
        parallelUploadUrls: null,
      });
    }
    return out;
  }

  /** Removes expired and unreadable entries, and tus-js-client's default ones left by older Vitals. */
  private prune(): void {
    purgeLegacy();
    if (!this.store) return;
    const oldest = this.now() - this.ttlMs;
    for (const key of this.keys()) {
      const e = this.parse(key);
      if (!e || e.created < oldest || e.created > this.now() + this.ttlMs) this.store.removeItem(key);
    }
  }

  private *read(): Iterable<[string, Entry]> {
    for (const key of this.keys()) {
      const e = this.parse(key);
      if (e) yield [key, e];
    }
  }

  private keys(): string[] {
    const s = this.store;
    if (!s) return [];
    const keys: string[] = [];
    for (let i = 0; i < s.length; i++) {
      const k = s.key(i);
      if (k?.startsWith(PREFIX)) keys.push(k);
    }
    return keys;
  }

  private parse(key: string): Entry | null {
    try {
      const e = JSON.parse(this.store?.getItem(key) ?? "");
      return typeof e?.url === "string" && typeof e?.created === "number" && (typeof e.size === "number" || e.size === null)
        ? { url: e.url, size: e.size, created: e.created }
        : null;
    } catch {
      return null;
    }
  }
}

/** Drops tus-js-client's default entries (they hold the file name) from localStorage. */
function purgeLegacy(): void {
  if (typeof localStorage === "undefined") return;
  const stale: string[] = [];
  for (let i = 0; i < localStorage.length; i++) {
    const k = localStorage.key(i);
    if (k?.startsWith(LEGACY_PREFIX)) stale.push(k);
  }
  for (const k of stale) localStorage.removeItem(k);
}

let shared: ResumeStore | null = null;

/** The page's ResumeStore over sessionStorage (none where storage is refused). */
export function resumeStore(): ResumeStore {
  if (!shared) {
    let s: Storage | null = null;
    try {
      s = typeof sessionStorage === "undefined" ? null : sessionStorage;
    } catch {
      s = null; // a sandboxed frame refuses storage
    }
    shared = new ResumeStore(s);
  }
  return shared;
}

export interface UploadCallbacks {
  onProgress: (bytes: number, total: number) => void;
  onSuccess: () => void;
  onError: (err: Error) => void;
}

/** The options of one upload of file to endpoint (absolute), signed in with token. */
export function tusOptions(file: File, endpoint: string, token: string, cb: UploadCallbacks, store: UrlStorage = resumeStore()) {
  return {
    endpoint,
    headers: { Authorization: `Bearer ${token}` },
    // The name and type go to the server inside the tus metadata only, never to storage.
    metadata: { filename: file.name, filetype: file.type || "application/octet-stream" },
    chunkSize: 8 * 1024 * 1024,
    retryDelays: [0, 1000, 3000, 5000],
    urlStorage: store,
    storeFingerprintForResuming: true,
    removeFingerprintOnSuccess: true,
    fingerprint: (f: File) => fingerprint(f, endpoint),
    onProgress: cb.onProgress,
    onSuccess: () => cb.onSuccess(),
    onError: cb.onError,
  } satisfies tus.Upload["options"];
}
