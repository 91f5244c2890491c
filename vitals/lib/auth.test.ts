import { describe, expect, it } from "vitest";
import { clearToken, decodeClaims, loadToken, saveToken, tokenProblem } from "./auth";

const jwt = (claims: object) => `h.${btoa(JSON.stringify(claims)).replace(/=+$/, "")}.s`;

describe("sign-in", () => {
  it("decodes claims and spots expired or malformed tokens", () => {
    expect(decodeClaims(jwt({ sub: "u", exp: 10 }))).toEqual({ sub: "u", exp: 10 });
    expect(tokenProblem("nope", 0)).toMatch(/not a valid/);
    expect(tokenProblem(jwt({ exp: 10 }), 11)).toMatch(/expired/);
    expect(tokenProblem(jwt({ exp: 10 }), 9)).toBeNull();
    expect(tokenProblem("  ", 0)).toMatch(/Paste/);
  });

  it("keeps the token in sessionStorage only", () => {
    saveToken(" abc ");
    expect(loadToken()).toBe("abc");
    expect(localStorage.length).toBe(0);
    clearToken();
    expect(loadToken()).toBeNull();
  });
});
