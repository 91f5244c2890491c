package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/mieweb/pulsevault/shared/audit/witness"
)

const witnessUsage = `Usage:
  pulsevault witness serve --key FILE --state FILE --log-key VKEY... [--listen ADDR]
        run a C2SP tlog-witness for the audit log: POST /add-checkpoint cosigns a
        checkpoint when its consistency proof extends the last one cosigned (kept
        in the state file); GET /checkpoint returns that last cosigned checkpoint
  pulsevault witness keygen --name NAME --key FILE
        write a new witness signing key to FILE (mode 0600) and print its
        cosignature verifier key (for AUDIT_WITNESSES and 'audit verify --witness-key')
  pulsevault witness pubkey --key FILE
        print the verifier key of an existing witness key
`

// runWitness is the auditor's witness service.
func runWitness(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, witnessUsage)
		if len(args) == 0 {
			return fmt.Errorf("%w: witness needs a subcommand", errUsage)
		}
		return nil
	}
	sub := args[0]
	fs := flag.NewFlagSet("witness "+sub, flag.ContinueOnError)
	fs.SetOutput(stdout)
	keyFile := fs.String("key", "", "the witness's signing key `FILE`")
	var listen, state, name *string
	var logKeys stringList
	var lk []string
	logKeys.l = &lk
	switch sub {
	case "serve":
		listen = fs.String("listen", "127.0.0.1:8490", "address to listen on")
		state = fs.String("state", "", "`FILE` holding the last checkpoint cosigned per log (created when missing)")
		fs.Var(logKeys, "log-key", "the audit log's verifier key `VKEY` ('audit pubkey' prints it; repeatable, one per log)")
	case "keygen":
		name = fs.String("name", "", "the witness's key `NAME` (e.g. witness.auditor.example)")
	case "pubkey":
	default:
		fmt.Fprint(stderr, witnessUsage)
		return fmt.Errorf("%w: unknown witness subcommand %q", errUsage, sub)
	}
	if err := fs.Parse(args[1:]); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *keyFile == "" {
		return fmt.Errorf("%w: witness %s needs --key FILE", errUsage, sub)
	}
	switch sub {
	case "keygen":
		if *name == "" {
			return fmt.Errorf("%w: witness keygen needs --name", errUsage)
		}
		skey, vkey, err := witness.GenerateKey(*name)
		if err != nil {
			return err
		}
		f, err := os.OpenFile(*keyFile, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintln(f, skey); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Fprintln(stdout, vkey)
		return nil
	case "pubkey":
		b, err := os.ReadFile(*keyFile)
		if err != nil {
			return err
		}
		vkey, err := witness.VerifierKey(string(b))
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, vkey)
		return nil
	}
	if *state == "" || len(lk) == 0 {
		return fmt.Errorf("%w: witness serve needs --state FILE and --log-key VKEY", errUsage)
	}
	b, err := os.ReadFile(*keyFile)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	srv, err := witness.NewServer(strings.TrimSpace(string(b)), lk, *state, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	vkey, _ := witness.VerifierKey(string(b))
	fmt.Fprintf(stdout, "witness listening on http://%s\nwitness key %s\n", ln.Addr(), vkey)
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
