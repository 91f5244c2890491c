import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import * as tus from "tus-js-client";
import { RESUME_TTL_MS, ResumeStore, tusOptions } from "./tus";

const ENDPOINT = "http://vitals.test/api/upload/";
const UPLOAD_URL = ENDPOINT + "4f1c2a9be07d4c3f8a1b2c3d4e5f6a7b";
const NAME = "jane-doe-gait.mp4";

/** A tus server that creates an upload, then answers each PATCH with patch(). */
function server(patch: (offset: number) => Promise<[number, Record<string, string>]>): tus.HttpStack {
  return {
    getName: () => "fake",
    createRequest(method: string, url: string) {
      const headers: Record<string, string> = {};
      return {
        getMethod: () => method,
        getURL: () => url,
        setHeader: (k: string, v: string) => void (headers[k] = v),
        getHeader: (k: string) => headers[k],
        setProgressHandler: () => {},
        async send(body?: unknown) {
          let status = 201;
          let out: Record<string, string> = { Location: UPLOAD_URL };
          if (method === "PATCH") [status, out] = await patch(Number(headers["Upload-Offset"]) + ((body as Blob | undefined)?.size ?? 0));
          if (method === "HEAD") [status, out] = [200, { "Upload-Offset": "0", "Upload-Length": "10" }];
          return {
            getStatus: () => status,
            getHeader: (k: string) => out[k],
            getBody: () => "",
            getUnderlyingObject: () => null,
          };
        },
        abort: async () => {},
        getUnderlyingObject: () => null,
      };
    },
  };
}

const never = () => new Promise<[number, Record<string, string>]>(() => {});
const file = () => new File(["0123456789"], NAME, { type: "video/mp4", lastModified: 1 });

/** Everything both web storages hold, keys and values. */
function stored(): string {
  const all: string[] = [];
  for (const s of [localStorage, sessionStorage]) {
    for (let i = 0; i < s.length; i++) all.push(s.key(i) + "=" + s.getItem(s.key(i)!));
  }
  return all.join("\n");
}

/** Starts an upload with opts and waits until its URL has been stored. */
async function started(opts: tus.Upload["options"], where: Storage) {
  const u = new tus.Upload(file(), opts);
  u.start();
  await vi.waitFor(() => expect(where.length).toBeGreaterThan(0));
  return u;
}

const cb = { onProgress: () => {}, onSuccess: () => {}, onError: () => {} };

beforeEach(() => {
  localStorage.clear();
  sessionStorage.clear();
});
afterEach(() => vi.useRealTimers());

// Regression (issue 15, finding 7): the resume entry of an upload holds no
// file name, lives in sessionStorage, and expires with the server's upload.
describe("resumable upload storage", () => {
  it("control: tus-js-client's own storage keeps the file name in localStorage", async () => {
    const u = await started({ ...tusOptions(file(), ENDPOINT, "T", cb), urlStorage: tus.defaultOptions.urlStorage, httpStack: server(never) }, localStorage);
    expect(stored()).toContain(NAME);
    await u.abort();
  });

  it("stores no file name while an upload runs or after it was abandoned, only in sessionStorage", async () => {
    let now = 1_000_000;
    const store = new ResumeStore(sessionStorage, () => now);
    const u = await started({ ...tusOptions(file(), ENDPOINT, "T", cb, store), httpStack: server(never) }, sessionStorage);
    await u.abort(); // abandoned mid-way
    const all = stored();
    expect(all).toContain(UPLOAD_URL);
    for (const bad of [NAME, "jane", btoa(NAME), "video/mp4", "metadata"]) expect(all).not.toContain(bad);
    expect(localStorage.length).toBe(0);

    // A reload finds it and resumes.
    const again = new tus.Upload(file(), { ...tusOptions(file(), ENDPOINT, "T", cb, store), httpStack: server(never) });
    const prev = await again.findPreviousUploads();
    expect(prev.map((p) => p.uploadUrl)).toEqual([UPLOAD_URL]);
    expect(prev[0].metadata).toEqual({});

    // After the server's UPLOAD_EXPIRY it is gone, from the list and from storage.
    now += RESUME_TTL_MS + 1;
    expect(await again.findPreviousUploads()).toEqual([]);
    expect(sessionStorage.length).toBe(0);
  });

  it("removes the entry when the upload succeeds", async () => {
    const store = new ResumeStore(sessionStorage);
    const done = new Promise<void>((resolve, reject) => {
      const u = new tus.Upload(file(), {
        ...tusOptions(file(), ENDPOINT, "T", { ...cb, onSuccess: resolve, onError: reject }, store),
        httpStack: server(async (end) => [204, { "Upload-Offset": String(end) }]),
      });
      u.start();
    });
    await done;
    expect(stored()).toBe("");
  });

  it("drops malformed entries and tus-js-client's old ones, which held file names", async () => {
    localStorage.setItem("tus::pv-abc::1", JSON.stringify({ size: 10, metadata: { filename: NAME }, uploadUrl: UPLOAD_URL }));
    localStorage.setItem("pulsevault.token.other", "kept");
    sessionStorage.setItem("pulsevault.tus::pv-abc::2", "{not json");
    sessionStorage.setItem("pulsevault.tus::pv-abc::3", JSON.stringify({ url: UPLOAD_URL, size: 10, created: Date.now() }));
    const store = new ResumeStore(sessionStorage);
    expect((await store.findUploadsByFingerprint("pv-abc")).map((p) => p.urlStorageKey)).toEqual(["pulsevault.tus::pv-abc::3"]);
    expect(stored()).not.toContain(NAME);
    expect(localStorage.getItem("pulsevault.token.other")).toBe("kept");
    expect(sessionStorage.length).toBe(1);
  });

  it("goes on without storage where the browser refuses it", async () => {
    const store = new ResumeStore(null);
    expect(await store.addUpload("pv-x", { size: 1, metadata: { filename: NAME }, creationTime: "", urlStorageKey: "", uploadUrl: UPLOAD_URL, parallelUploadUrls: null })).toBe("");
    expect(await store.findAllUploads()).toEqual([]);
  });
});
