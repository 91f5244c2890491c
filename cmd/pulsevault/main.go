// Command pulsevault runs PulseVault: the whole local stack (dev), the
// bootstrap of a store and NATS server, and the platform's other tools.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

var version = "dev" // set with -ldflags "-X main.version=..."

const usage = `pulsevault — secure clinical video: upload, lock, stream, sign, audit.

Usage:
  pulsevault dev [flags]        start the whole local stack on 127.0.0.1 (NATS, S3, bootstrap)
  pulsevault bootstrap [flags]  create buckets, streams and notifications on NATS_URL / S3_ENDPOINT; run the WORM canary
  pulsevault fn NAME            run one function as an HTTP server (what the provider starts)
  pulsevault provider [flags]   the OpenFaaS-compatible gateway that runs functions as child processes
  pulsevault connector [flags]  invoke functions for NATS messages, by each function's topic annotation
  pulsevault upload FILE...     upload videos with the tus protocol (the Pulse capture app's stand-in)
  pulsevault login|logout       sign this computer's user in (device flow) or out; whoami shows who
  pulsevault user add|passwd|disable|enable|list  manage the embedded OpenID provider's users.yaml
  pulsevault issuer [flags]     run the embedded OpenID provider on its own (a lab without an IdP)
  pulsevault audit verify|prove check the audit log (auditors)
  pulsevault witness serve|keygen    a C2SP witness an auditor runs: cosigns audit checkpoints
  pulsevault version            print the version

Every flag also reads an environment variable; run 'pulsevault dev -h' for the list.
`

// errUsage marks errors that are the caller's: exit status 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "pulsevault:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "pulsevault:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: no command given", errUsage)
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "dev":
		return runDev(ctx, rest, stdout, stderr)
	case "bootstrap":
		return runBootstrap(ctx, rest, stdout, stderr)
	case "fn":
		return runFn(ctx, rest, stdout, stderr)
	case "provider":
		return runProvider(ctx, rest, stdout, stderr)
	case "connector":
		return runConnector(ctx, rest, stdout, stderr)
	case "upload":
		return runUpload(ctx, rest, stdout, stderr)
	case "login":
		return runLogin(ctx, rest, stdout, stderr)
	case "logout":
		return runLogout(ctx, rest, stdout, stderr)
	case "whoami":
		return runWhoami(ctx, rest, stdout, stderr)
	case "user":
		return runUser(ctx, rest, os.Stdin, stdout, stderr)
	case "issuer":
		return runIssuer(ctx, rest, stdout, stderr)
	case "audit":
		return runAudit(ctx, rest, stdout, stderr)
	case "witness":
		return runWitness(ctx, rest, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "pulsevault", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
	}
}
