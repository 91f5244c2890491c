// Package witness is a C2SP tlog-witness (https://c2sp.org/tlog-witness)
// for PulseVault's audit log, and the client audit-append uses to ask
// witnesses to cosign its checkpoints.
//
// A witness is run by an auditor, away from the operator. It keeps the last
// checkpoint it cosigned for each log it knows (in a local file), and
// cosigns a new one only when a consistency proof shows the log grew from
// that one by appending: so the operator cannot later show anyone a log
// that is shorter than, or forks from, anything the witness cosigned.
// Cosignatures are Ed25519 timestamped cosignatures (C2SP tlog-cosignature,
// cosignature/v1).
package witness

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/mieweb/pulsevault/shared/audit/record"
)

// ContentTypeSize is the media type of a 409 answer: the witness's size.
const ContentTypeSize = "text/x.tlog.size"

// maxBody bounds a request: a checkpoint and at most 63 proof hashes.
const maxBody = 64 << 10

// Server is the witness's HTTP side: POST /add-checkpoint (tlog-witness)
// and GET /checkpoint?origin=O, the newest checkpoint it cosigned (with
// its cosignature), for auditors to compare a copy of the log with.
type Server struct {
	cosigner note.Signer
	logs     map[string]note.Verifier // by origin
	path     string
	log      *slog.Logger

	mu    sync.Mutex
	state map[string]Latest
}

// Latest is what the witness keeps per log: the last checkpoint it
// cosigned.
type Latest struct {
	Size     uint64    `json:"size"`
	Root     tlog.Hash `json:"root"`
	Cosigned string    `json:"cosigned"` // the checkpoint with the log's signature and the cosignature
}

// NewServer makes a witness that cosigns with skey (a note signer key,
// Ed25519), knows the logs whose note verifier keys are logKeys (the key
// name is the log's origin), and keeps its state in the file statePath.
func NewServer(skey string, logKeys []string, statePath string, log *slog.Logger) (*Server, error) {
	cs, err := fnote.NewSignerForCosignatureV1(strings.TrimSpace(skey))
	if err != nil {
		return nil, fmt.Errorf("witness: signing key: %w", err)
	}
	s := &Server{cosigner: cs, logs: map[string]note.Verifier{}, path: statePath, log: log, state: map[string]Latest{}}
	for _, k := range logKeys {
		v, err := note.NewVerifier(strings.TrimSpace(k))
		if err != nil {
			return nil, fmt.Errorf("witness: log key %q: %w", k, err)
		}
		s.logs[v.Name()] = v
	}
	if len(s.logs) == 0 {
		return nil, errors.New("witness: at least one log key is needed")
	}
	b, err := os.ReadFile(statePath)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("witness: state: %w", err)
	default:
		if err := json.Unmarshal(b, &s.state); err != nil {
			return nil, fmt.Errorf("witness: state %s: %w", statePath, err)
		}
	}
	return s, nil
}

// VerifierKey is the cosignature/v1 verifier key of a witness's signer key:
// what auditors pass to `audit verify --witness-key` and operators to
// AUDIT_WITNESSES.
func VerifierKey(skey string) (string, error) {
	// PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>
	parts := strings.SplitN(strings.TrimSpace(skey), "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("witness: not a note signer key (PRIVATE+KEY+name+hash+key)")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("witness: not an Ed25519 note signer key")
	}
	vkey, err := note.NewEd25519VerifierKey(parts[2], ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey))
	if err != nil {
		return "", err
	}
	return fnote.VKeyToCosignatureV1(vkey)
}

// GenerateKey makes a witness signing key named name and its
// cosignature/v1 verifier key.
func GenerateKey(name string) (skey, vkey string, err error) {
	skey, _, err = note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", "", err
	}
	vkey, err = VerifierKey(skey)
	return skey, vkey, err
}

func (s *Server) save() error {
	b, err := json.MarshalIndent(s.state, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(s.path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/add-checkpoint" && r.Method == http.MethodPost:
		s.add(w, r)
	case r.URL.Path == "/checkpoint" && r.Method == http.MethodGet:
		origin := r.URL.Query().Get("origin")
		s.mu.Lock()
		if origin == "" && len(s.logs) == 1 {
			for o := range s.logs {
				origin = o
			}
		}
		l, ok := s.state[origin]
		s.mu.Unlock()
		if !ok {
			http.Error(w, "no checkpoint cosigned for this log", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, l.Cosigned)
	default:
		http.Error(w, "POST /add-checkpoint or GET /checkpoint", http.StatusNotFound)
	}
}

func (s *Server) add(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
		return
	}
	hdr, cp, ok := bytes.Cut(body, []byte("\n\n"))
	if !ok {
		http.Error(w, "want the old size and proof lines, a blank line, then the checkpoint", http.StatusBadRequest)
		return
	}
	proof, err := record.ParseProof(append(hdr, '\n'))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	origin := record.NoteOrigin(cp)
	v, ok := s.logs[origin]
	if !ok {
		http.Error(w, "unknown log", http.StatusNotFound)
		return
	}
	p, err := record.OpenNote(cp, note.VerifierList(v))
	if err != nil {
		http.Error(w, "checkpoint not signed by the log's key", http.StatusForbidden)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.state[origin]
	switch {
	case proof.Old != cur.Size:
		w.Header().Set("Content-Type", ContentTypeSize)
		w.WriteHeader(http.StatusConflict)
		fmt.Fprintf(w, "%d\n", cur.Size)
		return
	case p.Size < proof.Old:
		http.Error(w, "checkpoint is older than the old size", http.StatusBadRequest)
		return
	case p.Size == proof.Old && (p.Root != cur.Root || len(proof.Hashes) > 0):
		s.log.Warn("witness: a checkpoint of the size last cosigned with another root: the log forked", "origin", origin, "size", p.Size)
		http.Error(w, "checkpoint of the same size with another root", http.StatusConflict)
		return
	case proof.Old == 0 && len(proof.Hashes) > 0:
		http.Error(w, "no proof is needed from size 0", http.StatusUnprocessableEntity)
		return
	case proof.Old > 0 && p.Size > proof.Old:
		if err := tlog.CheckTree(proof.Hashes, int64(p.Size), p.Root, int64(cur.Size), cur.Root); err != nil {
			s.log.Warn("witness: consistency proof does not verify", "origin", origin, "old", cur.Size, "size", p.Size)
			http.Error(w, "consistency proof does not verify", http.StatusUnprocessableEntity)
			return
		}
	}
	signed, err := note.Sign(&note.Note{Text: p.Note.Text}, s.cosigner)
	if err != nil {
		http.Error(w, "cannot cosign", http.StatusInternalServerError)
		return
	}
	sig := signed[len(p.Note.Text)+1:] // after the text and its blank line
	next := Latest{Size: p.Size, Root: p.Root, Cosigned: string(cp) + string(sig)}
	prev := cur
	s.state[origin] = next
	if err := s.save(); err != nil {
		s.state[origin] = prev
		s.log.Error("witness: cannot save state; not cosigning", "err", err)
		http.Error(w, "cannot save state", http.StatusInternalServerError)
		return
	}
	s.log.Info("witness: cosigned", "origin", origin, "size", p.Size)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(sig)
}

// ConflictError is a witness's 409 answer: it last cosigned Size, not the
// old size the request named.
type ConflictError struct{ Size uint64 }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("witness: it last cosigned size %d", e.Size)
}

// Client asks one witness to cosign.
type Client struct {
	URL      string        // base URL; /add-checkpoint is appended
	Verifier note.Verifier // its cosignature key
	HTTP     *http.Client  // default http.DefaultClient
}

// Add sends checkpoint cp with the proof from the witness's last size and
// returns cp with the witness's cosignature appended, checked.
func (c *Client) Add(ctx context.Context, proof record.Proof, cp []byte) ([]byte, error) {
	var body bytes.Buffer
	body.Write(proof.Marshal())
	body.WriteByte('\n')
	body.Write(cp)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.URL, "/")+"/add-checkpoint", &body)
	if err != nil {
		return nil, err
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	if resp.StatusCode == http.StatusConflict && strings.HasPrefix(resp.Header.Get("Content-Type"), ContentTypeSize) {
		n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("witness: 409 with a bad size %q", b)
		}
		return nil, &ConflictError{Size: n}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("witness: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	out := append(append([]byte(nil), cp...), b...)
	n, err := note.Open(out, note.VerifierList(c.Verifier))
	if err != nil || len(n.Sigs) != 1 {
		return nil, fmt.Errorf("witness: the cosignature does not verify with its key: %v", err)
	}
	return out, nil
}

// ParseWitnesses reads AUDIT_WITNESSES: entries separated by ";", each
// "URL VKEY" (the witness's base URL and its cosignature verifier key).
func ParseWitnesses(s string) ([]*Client, error) {
	var out []*Client
	for e := range strings.SplitSeq(s, ";") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		u, k, ok := strings.Cut(e, " ")
		if !ok || !(strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://")) {
			return nil, fmt.Errorf("AUDIT_WITNESSES: %q is not \"URL VKEY\"", e)
		}
		v, err := fnote.NewVerifierForCosignatureV1(strings.TrimSpace(k))
		if err != nil {
			return nil, fmt.Errorf("AUDIT_WITNESSES: key of %s: %w", u, err)
		}
		out = append(out, &Client{URL: u, Verifier: v})
	}
	return out, nil
}
