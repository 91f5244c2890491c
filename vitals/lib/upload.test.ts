import { describe, expect, it } from "vitest";
import { describeFailure, fingerprint, formatEta, idleUpload, percent, uploadReducer, validateFile } from "./upload";

describe("upload state machine", () => {
  it("rejects files with a clear reason", () => {
    expect(validateFile({ name: "a.mp4", size: 0, type: "video/mp4" })).toMatch(/empty/);
    expect(validateFile({ name: "a.pdf", size: 10, type: "application/pdf" })).toMatch(/not a video/);
    expect(validateFile({ name: "a.mov", size: 10, type: "" })).toBeNull();
    expect(validateFile({ name: "a.bin", size: 10, type: "" })).toMatch(/not a video/);
    expect(validateFile({ name: "a.mp4", size: 11, type: "video/mp4" }, 10)).toMatch(/too big/);
    expect(validateFile({ name: "a.mp4", size: 10, type: "video/mp4" }, 10)).toBeNull();
  });

  it("goes uploading → paused → uploading → done with percent, speed and ETA", () => {
    let s = uploadReducer(idleUpload, { type: "start", total: 1000, now: 0 });
    expect(s.phase).toBe("uploading");
    s = uploadReducer(s, { type: "progress", bytes: 250, total: 1000, now: 1000 });
    expect(percent(s)).toBe(25);
    expect(s.speed).toBe(250);
    expect(s.eta).toBe(3);
    s = uploadReducer(s, { type: "pause" });
    expect(s.phase).toBe("paused");
    expect(s.eta).toBeNull();
    // Progress that arrives after a pause does not move the bar.
    expect(uploadReducer(s, { type: "progress", bytes: 900, total: 1000, now: 1500 })).toBe(s);
    s = uploadReducer(s, { type: "resume", now: 5000 });
    expect(s.phase).toBe("uploading");
    s = uploadReducer(s, { type: "progress", bytes: 1000, total: 1000, now: 6000 });
    expect(percent(s)).toBe(100);
    expect(s.eta).toBe(0);
    s = uploadReducer(s, { type: "success" });
    expect(s.phase).toBe("done");
  });

  it("fails with a message and can resume from the error", () => {
    let s = uploadReducer(idleUpload, { type: "start", total: 10, now: 0 });
    s = uploadReducer(s, { type: "fail", message: describeFailure(413, true) });
    expect(s.phase).toBe("error");
    expect(s.error).toMatch(/too big/);
    expect(uploadReducer(s, { type: "resume", now: 1 }).phase).toBe("uploading");
    expect(uploadReducer(s, { type: "pause" })).toBe(s);
  });

  it("explains failures", () => {
    expect(describeFailure(null, false)).toMatch(/offline/);
    expect(describeFailure(401, true)).toMatch(/sign/);
    expect(describeFailure(503, true)).toMatch(/503/);
    expect(formatEta(75)).toBe("1 min 15 s");
  });

  it("fingerprints without the file name in the key", async () => {
    const f = { name: "patient-jane-doe.mp4", size: 5, type: "video/mp4", lastModified: 1 };
    const a = await fingerprint(f, "http://x/api/upload/");
    expect(a).toMatch(/^pv-[0-9a-f]{64}$/);
    expect(a).not.toContain("jane");
    expect(await fingerprint(f, "http://x/api/upload/")).toBe(a);
    expect(await fingerprint({ ...f, size: 6 }, "http://x/api/upload/")).not.toBe(a);
  });
});
