package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/mieweb/pulsevault/functions/audit-append"
	"github.com/mieweb/pulsevault/functions/echo"
	"github.com/mieweb/pulsevault/functions/events"
	"github.com/mieweb/pulsevault/functions/media"
	"github.com/mieweb/pulsevault/functions/sign-url"
	"github.com/mieweb/pulsevault/functions/transcode"
	"github.com/mieweb/pulsevault/functions/upload"
	"github.com/mieweb/pulsevault/functions/upload-finalize"
	"github.com/mieweb/pulsevault/functions/videos"
	"github.com/mieweb/pulsevault/shared/platform/fnrun"
	"github.com/mieweb/pulsevault/shared/platform/logging"
	"github.com/mieweb/pulsevault/shared/platform/secrets"
)

// functions are the functions this binary runs by their stack.yml name:
// what `pulsevault fn NAME` serves and what the provider agrees to deploy.
var functions = byName(
	upload.Function,
	uploadfinalize.Function,
	transcode.Function,
	signurl.Function,
	media.Function,
	auditappend.Function,
	echo.Function,
	videos.Function,
	events.Function,
)

func byName(fs ...*fnrun.Func) map[string]*fnrun.Func {
	m := make(map[string]*fnrun.Func, len(fs))
	for _, f := range fs {
		m[f.Name()] = f
	}
	return m
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
	f, ok := functions[name]
	if !ok {
		return fmt.Errorf("%w: unknown function %q: this binary has %s", errUsage, name, strings.Join(functionNames(), ", "))
	}
	// A private CA reaches the function as a secret (stack.yml lists it).
	if _, err := secrets.TrustCA(); err != nil {
		return fmt.Errorf("fn %s: %w", name, err)
	}
	// A function that fails to build is logged and retried on its next
	// request; the process still serves so the gateway can report it.
	return fnrun.Run(ctx, f, fnrun.Options{
		Logger: logging.New(stderr, os.Getenv("LOG_LEVEL"), "fn/"+name),
	})
}
