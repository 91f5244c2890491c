import type { NextConfig } from "next";

// A static export: the Go server (pulsevault dev, or nginx in production) serves
// vitals/out on the same origin as /api and /media, so there is no Node server.
const config: NextConfig = {
  output: "export",
  trailingSlash: true,
  images: { unoptimized: true },
  reactStrictMode: true,
  poweredByHeader: false,
};

export default config;
