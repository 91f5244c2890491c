package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"

	"github.com/mieweb/pulsevault/functions/audit-append"
	"github.com/mieweb/pulsevault/functions/echo"
	"github.com/mieweb/pulsevault/functions/events"
	"github.com/mieweb/pulsevault/functions/media"
	"github.com/mieweb/pulsevault/functions/pulsevault"
	"github.com/mieweb/pulsevault/functions/sign-url"
	"github.com/mieweb/pulsevault/functions/transcode"
	"github.com/mieweb/pulsevault/functions/upload"
	"github.com/mieweb/pulsevault/functions/upload-finalize"
	"github.com/mieweb/pulsevault/functions/videos"
	"github.com/mieweb/pulsevault/shared/platform/fnrun"
	"github.com/mieweb/pulsevault/shared/platform/logging"
	"github.com/mieweb/pulsevault/shared/platform/secrets"
)

// functions maps each function's stack.yml name to its handler: what
// `pulsevault fn NAME` serves and what the provider agrees to deploy.
var functions = map[string]http.HandlerFunc{
	upload.Name:         upload.Handle,
	uploadfinalize.Name: uploadfinalize.Handle,
	transcode.Name:      transcode.Handle,
	signurl.Name:        signurl.Handle,
	media.Name:          media.Handle,
	auditappend.Name:    auditappend.Handle,
	echo.Name:           echo.Handle,
	videos.Name:         videos.Handle,
	events.Name:         events.Handle,
	pulsevault.Name:     pulsevault.Handle,
}

// starters run once in a function's process before it serves, for
// functions with background work of their own (audit-append consumes its
// stream directly to batch appends).
var starters = map[string]func(context.Context) error{
	auditappend.Name: auditappend.Start,
}

// functionNames lists the functions this binary can run, sorted.
func functionNames() []string {
	names := make([]string, 0, len(functions))
	for n := range functions {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// runFn serves one function over HTTP until ctx is cancelled (SIGTERM),
// the way of-watchdog runs a function in a container. Its environment is
// of-watchdog's (port, read_timeout, write_timeout, exec_timeout) plus
// max_request_bytes, SECRETS_DIR and LOG_LEVEL.
func runFn(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Fprintf(stdout, "Usage: pulsevault fn NAME\n\nFunctions: %s\n", strings.Join(functionNames(), ", "))
		return nil
	}
	// Images start `pulsevault fn` without a shell, naming the function in
	// PULSEVAULT_FUNCTION (the template's FUNCTION build arg).
	if len(args) == 0 && os.Getenv("PULSEVAULT_FUNCTION") != "" {
		args = []string{os.Getenv("PULSEVAULT_FUNCTION")}
	}
	if len(args) != 1 {
		return fmt.Errorf("%w: fn needs exactly one function name, or PULSEVAULT_FUNCTION (one of %s)", errUsage, strings.Join(functionNames(), ", "))
	}
	name := args[0]
	h, ok := functions[name]
	if !ok {
		return fmt.Errorf("%w: unknown function %q: this binary has %s", errUsage, name, strings.Join(functionNames(), ", "))
	}
	// A private CA reaches the function as a secret (stack.yml lists it).
	if _, err := secrets.TrustCA(); err != nil {
		return fmt.Errorf("fn %s: %w", name, err)
	}
	if start, ok := starters[name]; ok {
		// A failed start is logged by the function and retried on its next
		// request; the process still serves so the gateway can report it.
		_ = start(ctx)
	}
	return fnrun.Serve(ctx, fnrun.Options{
		Name:    name,
		Handler: h,
		Logger:  logging.New(stderr, os.Getenv("LOG_LEVEL"), "fn/"+name),
	})
}
