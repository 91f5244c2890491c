//go:build tools

// Package tools pins the command-line tools that PulseVault builds into ./bin
// (versitygw, the local S3 server; faas-cli, the OpenFaaS client). They live in
// their own module so that their dependencies stay out of the main module.
package tools
