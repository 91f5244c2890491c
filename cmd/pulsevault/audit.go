package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/mieweb/pulsevault/shared/audit/record"
	"github.com/mieweb/pulsevault/shared/audit/verify"
	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/platform/settings"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/topology"
)

const auditUsage = `Usage:
  pulsevault audit verify [--from-dir DIR] [--public-key KEY]... [settings]
        check the whole audit log: chain links, sequence gaps and duplicates,
        checkpoint signatures and Merkle roots, and (from the bucket) that every
        object is under COMPLIANCE retention for AUDIT_RETENTION_DAYS and has
        exactly one version. Pin the signer's key with --public-key: without it
        the keys published in the bucket itself are trusted (a warning says so)
  pulsevault audit prove SEQ [--from-dir DIR] [--public-key KEY]... [settings]
        print the inclusion proof (JSON) of record SEQ against a signed checkpoint
  pulsevault audit check-proof FILE|- [--public-key KEY]...
        check a proof printed by prove (keys: pinned, else the one in the proof must be given)
  pulsevault audit pubkey [--from-secret FILE] [settings]
        print the checkpoint public key(s): published in the bucket, or derived from the secret file
  pulsevault audit keygen
        print a new signing key for the pulsevault-audit-key secret (base64 Ed25519 seed)

Without --from-dir the bucket BUCKET_AUDIT is read at S3_ENDPOINT with S3_ACCESS_KEY /
S3_SECRET_KEY (read-only credentials are enough). KEY is base64 of a 32-byte Ed25519 public
key, or a file holding one. Run 'pulsevault audit verify -h' for the settings.
`

// auditFlags are the audit command's own flags and its positional arguments.
type auditFlags struct {
	fromDir    string
	fromSecret string
	keys       publicKeys
	args       []string // positional
}

// publicKeys is the repeatable --public-key flag: base64 of an Ed25519
// public key, or a file holding one.
type publicKeys map[string]ed25519.PublicKey

func (k publicKeys) String() string { return "" }

func (k publicKeys) Set(val string) error {
	b := []byte(val)
	if fb, err := os.ReadFile(val); err == nil {
		b = fb
	}
	pub, err := record.ParsePublicKey(b)
	if err != nil {
		return err
	}
	k[record.KeyID(pub)] = pub
	return nil
}

// auditFlagSet declares sub's flags: the audit command's own and, for the
// subcommands that read the bucket, every setting (config.Vars) through the
// one settings reader. load validates the settings after parsing.
func auditFlagSet(sub string, out io.Writer, getenv func(string) string) (fs *flag.FlagSet, f *auditFlags, load func() (config.Config, error), err error) {
	fs = flag.NewFlagSet("pulsevault audit "+sub, flag.ContinueOnError)
	fs.SetOutput(out)
	f = &auditFlags{keys: publicKeys{}}
	fs.StringVar(&f.fromDir, "from-dir", "", "read a local copy of the audit bucket in DIR instead of BUCKET_AUDIT")
	fs.StringVar(&f.fromSecret, "from-secret", "", "pubkey: derive the public key from this pulsevault-audit-key secret file")
	fs.Var(f.keys, "public-key", "pin the checkpoint signer's key: base64 Ed25519 public key, or a file holding one (repeatable)")
	load = func() (config.Config, error) { return config.Config{}, nil }
	if sub == "verify" || sub == "prove" || sub == "pubkey" {
		cfg, check, err := config.Bind(fs, "audit "+sub, getenv)
		if err != nil {
			return nil, nil, nil, err
		}
		load = func() (config.Config, error) { return *cfg, check() }
	}
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), auditUsage, "\nFlags of audit "+sub+":\n")
		fs.PrintDefaults()
	}
	return fs, f, load, nil
}

// parseAudit parses the arguments of audit sub: flags (--name value or
// --name=value) anywhere among the positional arguments.
func parseAudit(sub string, args []string, out io.Writer, getenv func(string) string) (auditFlags, config.Config, error) {
	fs, f, load, err := auditFlagSet(sub, out, getenv)
	if err != nil {
		return auditFlags{}, config.Config{}, fmt.Errorf("%w: %v", errUsage, err)
	}
	if f.args, err = settings.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return auditFlags{}, config.Config{}, err
		}
		return auditFlags{}, config.Config{}, fmt.Errorf("%w: audit %s: %v", errUsage, sub, err)
	}
	cfg, err := load()
	if err != nil {
		return auditFlags{}, config.Config{}, fmt.Errorf("%w: %v", errUsage, err)
	}
	return *f, cfg, nil
}

// runAudit is the auditor's tool.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, auditUsage)
		if len(args) == 0 {
			return fmt.Errorf("%w: audit needs a subcommand", errUsage)
		}
		return nil
	}
	sub := args[0]
	switch sub {
	case "keygen", "check-proof", "verify", "prove", "pubkey":
	default:
		fmt.Fprint(stderr, auditUsage)
		return fmt.Errorf("%w: unknown audit subcommand %q", errUsage, sub)
	}
	f, cfg, err := parseAudit(sub, args[1:], stdout, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	switch sub {
	case "keygen":
		seed := make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return err
		}
		fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(seed))
		return nil
	case "check-proof":
		return auditCheckProof(f, stdout)
	}
	var src verify.Source
	if f.fromDir != "" {
		if fi, err := os.Stat(f.fromDir); err != nil || !fi.IsDir() {
			return fmt.Errorf("%w: --from-dir %q is not a directory", errUsage, f.fromDir)
		}
		src = verify.Dir(f.fromDir)
	} else if sub != "pubkey" || f.fromSecret == "" {
		if cfg.LocalS3() {
			return fmt.Errorf("%w: audit %s needs S3_ENDPOINT (or --from-dir DIR)", errUsage, sub)
		}
		if err := cfg.CheckS3(); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		st, err := storage.FromConfig(cfg)
		if err != nil {
			return err
		}
		src = verify.Bucket{Store: st, Name: cfg.AuditBucket}
	}

	switch sub {
	case "verify":
		if len(f.args) > 0 {
			return fmt.Errorf("%w: audit verify takes no argument (got %q)", errUsage, f.args[0])
		}
		days := cfg.AuditRetentionDays
		if f.fromDir != "" {
			days = 0
		}
		if len(f.keys) == 0 {
			fmt.Fprintln(stderr, "pulsevault: WARNING:", verify.UnpinnedWarning)
		}
		rep, err := verify.Verify(ctx, src, verify.Options{Keys: f.keys, RetentionDays: days})
		if err != nil {
			return err
		}
		rep.Write(stdout)
		if !rep.OK() {
			return fmt.Errorf("audit log verification failed: %s", rep.Failures[0])
		}
		return nil
	case "prove":
		if len(f.args) != 1 {
			return fmt.Errorf("%w: audit prove needs one SEQ", errUsage)
		}
		seq, err := strconv.ParseUint(f.args[0], 10, 64)
		if err != nil || seq == 0 {
			return fmt.Errorf("%w: SEQ %q must be a record sequence number (1, 2, ...)", errUsage, f.args[0])
		}
		p, err := verify.Prove(ctx, src, seq, f.keys)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(p)
	default: // pubkey
		if f.fromSecret != "" {
			b, err := os.ReadFile(f.fromSecret)
			if err != nil {
				return fmt.Errorf("%w: --from-secret: %v", errUsage, err)
			}
			s, err := record.ParseSeed(b)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s %s", s.KeyID(), record.EncodePublicKey(s.Public()))
			return nil
		}
		keys, err := src.List(ctx)
		if err != nil {
			return err
		}
		n := 0
		for _, k := range keys {
			if topology.ParseAuditKey(k).Kind != topology.AuditKindPublicKey {
				continue
			}
			b, err := src.Read(ctx, k)
			if err != nil {
				return err
			}
			pub, err := record.ParsePublicKey(b)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			fmt.Fprintf(stdout, "%s %s", record.KeyID(pub), record.EncodePublicKey(pub))
			n++
		}
		if n == 0 {
			return fmt.Errorf("no public key published under %s in %s", topology.AuditKeysPrefix, src)
		}
		return nil
	}
}

func auditCheckProof(f auditFlags, stdout io.Writer) error {
	if len(f.args) != 1 {
		return fmt.Errorf("%w: audit check-proof needs one FILE (or - for standard input)", errUsage)
	}
	var b []byte
	var err error
	if f.args[0] == "-" {
		b, err = io.ReadAll(os.Stdin)
	} else {
		b, err = os.ReadFile(f.args[0])
	}
	if err != nil {
		return err
	}
	var p verify.Proof
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("not a proof: %w", err)
	}
	if len(f.keys) == 0 {
		return fmt.Errorf("%w: check-proof needs --public-key (the proof cannot vouch for its own key)", errUsage)
	}
	if err := verify.CheckProof(&p, f.keys); err != nil {
		return fmt.Errorf("proof does not verify: %w", err)
	}
	fmt.Fprintf(stdout, "OK: record %d is leaf %d of the %d-record tree of %s signed by key %s\n",
		p.Seq, p.LeafIndex, p.Checkpoint.TreeSize, p.Checkpoint.Day, p.Checkpoint.KeyID)
	return nil
}
