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
	"net/http"
	"os"
	"strconv"
	"strings"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/mieweb/pulsevault/shared/audit/record"
	"github.com/mieweb/pulsevault/shared/audit/verify"
	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/platform/settings"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/topology"
)

const auditUsage = `Usage:
  pulsevault audit verify [flags] [settings]
        check the whole audit log: chain links, sequence gaps and duplicates,
        C2SP checkpoint signatures, Merkle roots and consistency proofs (and the
        day checkpoints of version 1), witness cosignatures, and (from the bucket)
        that every object is under COMPLIANCE retention for AUDIT_RETENTION_DAYS and
        has exactly one version. Pin the signer's key with --public-key: without it
        the keys published in the bucket itself are trusted (a warning says so).
        Give --witness-key (and --witnessed): without a witness, verify cannot rule
        out that the log was truncated or rolled back (it says so)
  pulsevault audit prove SEQ [flags] [settings]
        print the inclusion proof (JSON) of record SEQ against a signed checkpoint
  pulsevault audit check-proof FILE|- [flags]
        check a proof printed by prove (keys: pinned, else the one in the proof must be given)
  pulsevault audit who-watched VIDEO [flags] [settings]
        list the grants (url.signed), accesses (media.accessed) and refusals
        (access.denied) of a video from the log, each with the person its grant was
        issued to (run verify first: this reads the records as they are)
  pulsevault audit what-watched USER [flags] [settings]
        the same for one person (JWT subject): every video granted to them and used
  pulsevault audit pubkey [flags] [settings]
        print the checkpoint public key(s) as note verifier keys: published in the
        bucket, or derived from the secret file
  pulsevault audit keygen [flags]
        print a new signing key for the pulsevault-audit-key secret (base64 Ed25519
        seed) on stdout, and its verifier key on stderr

Without --from-dir the bucket BUCKET_AUDIT is read at S3_ENDPOINT with S3_ACCESS_KEY /
S3_SECRET_KEY (read-only credentials are enough). KEY is what 'audit pubkey' prints (a
note verifier key, ORIGIN+HASH+BASE64), the older "ID BASE64" line, bare base64 of the
32-byte Ed25519 key, or a file holding one. Run 'pulsevault audit SUBCOMMAND -h' for the
flags and settings of each.
`

// auditFlags are the audit command's own flags and its positional arguments.
type auditFlags struct {
	fromDir    string
	fromSecret string
	origin     string
	keys       map[string]ed25519.PublicKey
	keyOrigin  string // the name of a pinned verifier key
	witnesses  []note.Verifier
	quorum     int
	witnessed  []string
	args       []string // positional
}

// keyList is the repeatable --public-key flag: what `audit pubkey` prints
// (a note verifier key), the older "ID BASE64" line or bare base64 of an
// Ed25519 public key, or a file holding one.
type keyList struct{ f *auditFlags }

func (k keyList) String() string { return "" }
func (k keyList) Set(v string) error {
	if fb, err := os.ReadFile(v); err == nil {
		v = string(fb)
	}
	pub, origin, err := record.ParseAnyPublicKey(v)
	if err != nil {
		return err
	}
	k.f.keys[record.KeyID(pub)] = pub
	if origin != "" {
		k.f.keyOrigin = origin
	}
	return nil
}

// witnessList is the repeatable --witness-key flag.
type witnessList struct{ f *auditFlags }

func (w witnessList) String() string { return "" }
func (w witnessList) Set(v string) error {
	if fb, err := os.ReadFile(v); err == nil {
		v = string(fb)
	}
	ver, err := fnote.NewVerifierForCosignatureV1(strings.TrimSpace(v))
	if err != nil {
		return fmt.Errorf("not a witness verifier key: %v", err)
	}
	w.f.witnesses = append(w.f.witnesses, ver)
	return nil
}

type stringList struct{ l *[]string }

func (s stringList) String() string     { return "" }
func (s stringList) Set(v string) error { *s.l = append(*s.l, v); return nil }

// auditFlagSet declares sub's flags: the audit command's own and, for the
// subcommands that read the bucket, every setting (config.Vars) through the
// one settings reader. load validates the settings after parsing.
func auditFlagSet(sub string, out io.Writer, getenv func(string) string) (fs *flag.FlagSet, f *auditFlags, load func() (config.Config, error), err error) {
	fs = flag.NewFlagSet("pulsevault audit "+sub, flag.ContinueOnError)
	fs.SetOutput(out)
	f = &auditFlags{keys: map[string]ed25519.PublicKey{}}
	switch sub {
	case "verify", "prove", "pubkey", "who-watched", "what-watched":
		fs.StringVar(&f.fromDir, "from-dir", "", "read a local copy of the audit bucket in `DIR` instead of BUCKET_AUDIT")
	}
	switch sub {
	case "verify", "prove", "check-proof":
		fs.Var(keyList{f}, "public-key", "pin the log's public key `KEY` (repeatable): what 'audit pubkey' prints, or a file holding it")
	}
	switch sub {
	case "verify":
		fs.Var(witnessList{f}, "witness-key", "trust the witness with cosignature verifier key `VKEY` (repeatable; from 'pulsevault witness keygen', or a file holding it)")
		fs.IntVar(&f.quorum, "witness-quorum", 1, "how many of the --witness-key witnesses must have cosigned a checkpoint for it to count")
		fs.Var(stringList{&f.witnessed}, "witnessed", "a cosigned checkpoint from outside the audited copy: a witness's `URL` (its /checkpoint is read) or a FILE (repeatable); with it a copy that lost its newest records fails")
	case "pubkey":
		fs.StringVar(&f.fromSecret, "from-secret", "", "derive the key from this pulsevault-audit-key secret `FILE` instead of reading the bucket")
		fs.StringVar(&f.origin, "origin", record.DefaultOrigin, "the log's origin (AUDIT_ORIGIN): the name of the printed verifier key")
	case "keygen":
		fs.StringVar(&f.origin, "origin", record.DefaultOrigin, "the log's origin (AUDIT_ORIGIN), for the verifier key printed on stderr")
	}
	load = func() (config.Config, error) { return config.Config{}, nil }
	if sub == "verify" || sub == "prove" || sub == "pubkey" || sub == "who-watched" || sub == "what-watched" {
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
	case "keygen", "check-proof", "verify", "prove", "pubkey", "who-watched", "what-watched":
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
		vkey, err := record.VerifierKey(f.origin, ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
		if err != nil {
			return fmt.Errorf("%w: --origin: %v", errUsage, err)
		}
		fmt.Fprintln(stderr, "public key (for --public-key):", vkey)
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
		if len(f.witnesses) == 0 {
			fmt.Fprintln(stderr, "pulsevault: WARNING:", verify.NoWitnessWarning)
		}
		var witnessed [][]byte
		for _, w := range f.witnessed {
			b, err := readWitnessed(ctx, w)
			if err != nil {
				return fmt.Errorf("--witnessed %s: %w", w, err)
			}
			witnessed = append(witnessed, b)
		}
		rep, err := verify.Verify(ctx, src, verify.Options{Keys: f.keys, RetentionDays: days, Origin: f.keyOrigin,
			Witnesses: f.witnesses, Quorum: f.quorum, Witnessed: witnessed})
		if err != nil {
			return err
		}
		rep.Write(stdout)
		if !rep.OK() {
			return fmt.Errorf("audit log verification failed: %s", rep.Failures[0])
		}
		return nil
	case "who-watched", "what-watched":
		if len(f.args) != 1 {
			return fmt.Errorf("%w: audit %s needs one argument", errUsage, sub)
		}
		video, user := f.args[0], ""
		if sub == "what-watched" {
			video, user = "", f.args[0]
		}
		as, err := verify.Watched(ctx, src, video, user)
		if err != nil {
			return err
		}
		verify.WriteAccesses(stdout, as)
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
			vkey, err := record.VerifierKey(f.origin, s.Public())
			if err != nil {
				return fmt.Errorf("%w: --origin: %v", errUsage, err)
			}
			fmt.Fprintln(stdout, vkey)
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
			vkey, err := record.VerifierKey(f.origin, pub)
			if err != nil {
				return fmt.Errorf("%w: --origin: %v", errUsage, err)
			}
			fmt.Fprintln(stdout, vkey)
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
	if p.Note != "" {
		fmt.Fprintf(stdout, "OK: record %d is leaf %d of the %d-record log in the C2SP checkpoint of %s\n",
			p.Seq, p.LeafIndex, p.TreeSize, record.NoteOrigin([]byte(p.Note)))
		return nil
	}
	fmt.Fprintf(stdout, "OK: record %d is leaf %d of the %d-record tree of %s signed by key %s\n",
		p.Seq, p.LeafIndex, p.Checkpoint.TreeSize, p.Checkpoint.Day, p.Checkpoint.KeyID)
	return nil
}

// readWitnessed reads a cosigned checkpoint from a witness (GET URL/checkpoint)
// or a file.
func readWitnessed(ctx context.Context, src string) ([]byte, error) {
	if !strings.HasPrefix(src, "http://") && !strings.HasPrefix(src, "https://") {
		return os.ReadFile(src)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(src, "/")+"/checkpoint", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("witness answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}
