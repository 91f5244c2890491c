package tests

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/openfaas/faas-provider/types"

	"github.com/mieweb/pulsevault/shared/audit/chain"
	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/audit/record"
	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/testutil/testenv"
	"github.com/mieweb/pulsevault/shared/topology"
)

// auditRig is a real provider running audit-append replicas against a real
// versitygw and the provider's NATS.
type auditRig struct {
	t    *testing.T
	bin  string
	p    *providerCmd
	cfg  config.Config // S3 of testenv, NATS of the provider
	st   *storage.Store
	b    *bus.Bus
	pub  ed25519.PublicKey
	env  []string // settings for `pulsevault audit`
	head jetstream.KeyValue
}

func startAuditRig(t *testing.T, replicas int, fnEnv map[string]string) *auditRig {
	t.Helper()
	bin := buildPulsevault(t)
	env := testenv.Start(t)
	c := env.Config
	// The provider hands its own store settings to the functions it starts.
	for k, v := range map[string]string{"S3_ENDPOINT": c.S3Endpoint, "S3_ACCESS_KEY": c.S3AccessKey,
		"S3_SECRET_KEY": c.S3SecretKey, "AUDIT_RETENTION_DAYS": "1"} {
		t.Setenv(k, v)
	}
	p := startProviderCmd(t, bin)
	c.NATSURL = p.natsURL
	st, b := bootstrapped(t, c, "audit-test")
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i * 7)
	}
	sec := types.Secret{Name: record.SecretName, Value: base64.StdEncoding.EncodeToString(seed)}
	if code, _, body := p.do(http.MethodPost, "/system/secrets", sec, true); code/100 != 2 {
		t.Fatalf("create secret: %d %s", code, body)
	}
	dep := types.FunctionDeployment{Service: "audit-append", Image: "pulsevault-audit-append:dev",
		Secrets: []string{record.SecretName}, EnvVars: fnEnv}
	if code, _, body := p.do(http.MethodPost, "/system/functions", dep, true); code != http.StatusAccepted {
		t.Fatalf("deploy audit-append: %d %s", code, body)
	}
	if replicas > 1 {
		req := types.ScaleServiceRequest{ServiceName: "audit-append", Replicas: uint64(replicas)}
		if code, _, body := p.do(http.MethodPost, "/system/scale-function/audit-append", req, true); code/100 != 2 {
			t.Fatalf("scale: %d %s", code, body)
		}
	}
	r := &auditRig{t: t, bin: bin, p: p, cfg: c, st: st, b: b,
		pub: ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey),
		env: []string{"S3_ENDPOINT=" + c.S3Endpoint, "S3_ACCESS_KEY=" + c.S3AccessKey, "S3_SECRET_KEY=" + c.S3SecretKey, "AUDIT_RETENTION_DAYS=1"}}
	return r
}

type fnStatus struct {
	chain.Status
	PID int `json:"pid"`
}

func (r *auditRig) status() fnStatus {
	r.t.Helper()
	code, _, body := r.p.do(http.MethodGet, "/function/audit-append", nil, false)
	var s fnStatus
	if code != 200 || json.Unmarshal([]byte(body), &s) != nil {
		r.t.Fatalf("status: %d %s", code, body)
	}
	return s
}

// wake calls the function until n distinct replicas have answered (each
// starts its writer on its first request unless the binary starts it), and
// returns their pids.
func (r *auditRig) wake(n int, not ...int) []int {
	r.t.Helper()
	var pids []int
	deadline := time.Now().Add(30 * time.Second)
	for len(pids) < n {
		if time.Now().After(deadline) {
			r.t.Fatalf("only replicas %v answered within 30s", pids)
		}
		code, _, body := r.p.do(http.MethodGet, "/function/audit-append", nil, false)
		var s fnStatus
		if code == 200 && json.Unmarshal([]byte(body), &s) == nil && !slices.Contains(pids, s.PID) && !slices.Contains(not, s.PID) {
			pids = append(pids, s.PID)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return pids
}

// headSeq reads the chain head from JetStream KV, as any replica sees it.
func (r *auditRig) headSeq() uint64 {
	r.t.Helper()
	if r.head == nil {
		kv, err := r.b.JetStream().KeyValue(context.Background(), topology.KVAuditChain)
		if err != nil {
			return 0
		}
		r.head = kv
	}
	e, err := r.head.Get(context.Background(), "head")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(e.Value(), []byte("\n"))
	var h struct{ Seq uint64 }
	_ = json.Unmarshal(line, &h)
	return h.Seq
}

func (r *auditRig) waitHead(n uint64, within time.Duration) time.Duration {
	r.t.Helper()
	start := time.Now()
	for r.headSeq() < n {
		if time.Since(start) > within {
			r.t.Fatalf("chain head at %d, want %d, after %s", r.headSeq(), n, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func (r *auditRig) publish(n, publishers, offset int) {
	r.t.Helper()
	pub := event.NewPublisher(r.b, "audit-test")
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := range publishers {
		wg.Go(func() {
			for i := p; i < n; i += publishers {
				err := pub.Publish(context.Background(), event.Event{ID: fmt.Sprintf("ev-%07d", offset+i),
					Action: event.MediaAccessed, Outcome: event.Success, Object: "0b7f1c4e-2a8e-4d5e-9a57-0d2f3c4b5a69"})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		r.t.Fatal(err)
	}
}

func (r *auditRig) checkpoint() {
	r.t.Helper()
	code, _, body := r.p.do(http.MethodPost, "/function/audit-append/checkpoint", nil, false)
	if code != 200 {
		r.t.Fatalf("checkpoint: %d %s", code, body)
	}
}

// cli runs `pulsevault audit ARGS` and returns its output and exit code.
func (r *auditRig) cli(args ...string) (string, int) {
	r.t.Helper()
	cmd := exec.Command(r.bin, append([]string{"audit"}, args...)...)
	cmd.Env = append(os.Environ(), r.env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	r.t.Fatalf("audit %v: %v", args, err)
	return "", -1
}

// download copies the bucket to a directory, as an auditor would.
func (r *auditRig) download() string {
	r.t.Helper()
	dir := r.t.TempDir()
	for info, err := range r.st.List(context.Background(), r.cfg.AuditBucket, "") {
		if err != nil {
			r.t.Fatal(err)
		}
		rc, _, err := r.st.Get(context.Background(), r.cfg.AuditBucket, info.Key, 0, -1)
		if err != nil {
			r.t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			r.t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(info.Key))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	return dir
}

func batchKeys(t *testing.T, dir string) (batches, checkpoints []string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			switch topology.ParseAuditKey(filepath.ToSlash(rel)).Kind {
			case topology.AuditKindBatch:
				batches = append(batches, rel)
			case topology.AuditKindCheckpoint, topology.AuditKindNote:
				checkpoints = append(checkpoints, rel)
			}
		}
		return nil
	})
	slices.Sort(batches)
	slices.Sort(checkpoints)
	return batches, checkpoints
}

// 10,000 events from 4 concurrent publishers, 2 audit-append replicas (real
// child processes of a real provider), one of them SIGKILLed mid-run: one
// unbroken chain, no gap, no duplicate, every event, verify passes; then
// every tamper of a copy of the bucket is caught and named.
func TestAuditAppendEndToEnd(t *testing.T) {
	r := startAuditRig(t, 2, map[string]string{"AUDIT_BATCH_WAIT": "20ms", "AUDIT_ACK_WAIT": "3s", "LOG_LEVEL": "debug"})
	pids := r.wake(2)

	const n = 10000
	done := make(chan struct{})
	start := time.Now()
	go func() { defer close(done); r.publish(n, 4, 0) }()
	// Kill one replica in the middle of the run, while batches are in flight.
	r.waitHead(n/4, 60*time.Second)
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := r.headSeq()
	<-done
	published := time.Since(start)
	r.waitHead(n, 60*time.Second)
	took := time.Since(start)
	t.Logf("10,000 events, 4 publishers, 2 replicas, one SIGKILLed at head %d: published in %s, all appended in %s (%.0f events/s end to end)",
		killedAt, published.Round(time.Millisecond), took.Round(time.Millisecond), n/took.Seconds())
	// The provider restarted the killed replica; it takes part again.
	r.wake(1, pids[0])
	r.checkpoint()

	// One malformed event goes to the dead letters, and never to the log or the logs.
	if err := r.b.Publish(context.Background(), "pulse.audit.media.accessed", []byte(`{"v":1,"id":"bad","file_name":"jane-doe-gait.mp4"}`), "bad"); err != nil {
		t.Fatal(err)
	}

	out, code := r.cli("verify")
	if code != 0 || !strings.Contains(out, "records         10000 (seq 1..10000)") || !strings.Contains(out, "RESULT: OK") ||
		!strings.Contains(out, "retention       checked on") {
		t.Fatalf("verify from the bucket: exit %d\n%s", code, out)
	}
	t.Logf("verify:\n%s", out)
	// Pinned to the key from the secret, too.
	// pubkey prints a note verifier key (origin+hash+key) that --public-key takes.
	keyOut, code := r.cli("pubkey")
	vkey := strings.TrimSpace(keyOut)
	if pub, origin, err := record.ParseAnyPublicKey(vkey); code != 0 || err != nil || !pub.Equal(r.pub) || origin != record.DefaultOrigin {
		t.Fatalf("pubkey: %d %s %v", code, keyOut, err)
	}
	if out, code := r.cli("verify", "--public-key", vkey); code != 0 {
		t.Fatalf("pinned verify: %d\n%s", code, out)
	}

	// Inclusion proof of one record, checked on its own.
	proof, code := r.cli("prove", "4321")
	if code != 0 || !strings.Contains(proof, `"seq": 4321`) {
		t.Fatalf("prove: %d %s", code, proof)
	}
	pf := filepath.Join(t.TempDir(), "proof.json")
	if err := os.WriteFile(pf, []byte(proof), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := r.cli("check-proof", pf, "--public-key", vkey); code != 0 || !strings.HasPrefix(out, "OK: record 4321") {
		t.Fatalf("check-proof: %d %s", code, out)
	}
	if !strings.Contains(proof, `\"outcome\":\"success\"`) {
		t.Fatalf("proof record: %s", proof)
	}
	forged := strings.Replace(proof, `\"outcome\":\"success\"`, `\"outcome\":\"denied\"`, 1)
	_ = os.WriteFile(pf, []byte(forged), 0o644)
	if out, code := r.cli("check-proof", pf, "--public-key", vkey); code == 0 {
		t.Fatalf("forged proof verified: %s", out)
	}

	// The locked bucket refuses deleting a batch version, shortening its
	// retention, or writing over it.
	clean := r.download()
	batches, checkpoints := batchKeys(t, clean)
	if len(batches) < 3 || len(checkpoints) == 0 {
		t.Fatalf("batches %v checkpoints %v", batches, checkpoints)
	}
	key := filepath.ToSlash(batches[1])
	info, err := r.st.Stat(context.Background(), r.cfg.AuditBucket, key)
	if err != nil {
		t.Fatal(err)
	}
	if info.Retention == nil || info.Retention.Mode != "COMPLIANCE" {
		t.Fatalf("batch retention: %+v", info.Retention)
	}
	if err := r.st.Remove(context.Background(), r.cfg.AuditBucket, key, info.VersionID); err == nil {
		t.Fatal("a locked batch version was deleted")
	}
	if err := r.st.PutRetention(context.Background(), r.cfg.AuditBucket, key, info.VersionID,
		storage.Retention{Mode: "COMPLIANCE", Until: time.Now().Add(time.Minute).UTC().Truncate(time.Second)}); err == nil {
		t.Fatal("a batch's COMPLIANCE retention was shortened")
	}
	if _, err := r.st.PutBytes(context.Background(), r.cfg.AuditBucket, key, []byte("{}\n"), storage.PutOptions{IfNoneMatch: true,
		Retention: &storage.Retention{Mode: "COMPLIANCE", Until: time.Now().Add(time.Hour).UTC().Truncate(time.Second)}}); err == nil {
		t.Fatal("a batch was overwritten")
	}

	// Tampered copies: verify fails and names the spot, every time.
	read := func(dir, k string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, k))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	write := func(dir, k string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, k), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	last := batches[len(batches)-1]
	cases := []struct {
		name   string
		tamper func(dir string)
		where  string
	}{
		{"flip a byte in a record", func(d string) {
			b := read(d, batches[1])
			i := bytes.Index(b, []byte(`"media.accessed"`)) + 3
			b[i] ^= 0x01
			write(d, batches[1], b)
		}, filepath.ToSlash(batches[1]) + " line 1"},
		{"delete a batch", func(d string) { os.Remove(filepath.Join(d, batches[1])) }, filepath.ToSlash(batches[2])},
		{"swap two batches", func(d string) {
			a, b := read(d, batches[0]), read(d, batches[1])
			write(d, batches[0], b)
			write(d, batches[1], a)
		}, filepath.ToSlash(batches[0]) + " line 1"},
		{"truncate the last batch", func(d string) {
			b := read(d, last)
			write(d, last, b[:len(b)-25])
		}, filepath.ToSlash(last)},
		{"replace a checkpoint signature", func(d string) {
			// A C2SP note: "— <origin> <base64(key hash || signature)>".
			k := checkpoints[len(checkpoints)-1]
			b := read(d, k)
			i := bytes.LastIndexByte(b[:len(b)-1], ' ')
			sig, _ := base64.StdEncoding.DecodeString(string(b[i+1 : len(b)-1]))
			sig[10] ^= 0xff
			write(d, k, append(append(b[:i+1:i+1], base64.StdEncoding.EncodeToString(sig)...), '\n'))
		}, filepath.ToSlash(checkpoints[len(checkpoints)-1])},
	}
	for _, c := range cases {
		dir := t.TempDir()
		if err := os.CopyFS(dir, os.DirFS(clean)); err != nil {
			t.Fatal(err)
		}
		c.tamper(dir)
		out, code := r.cli("verify", "--from-dir", dir)
		first := ""
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "first failure") {
				first = l
			}
		}
		if code != 1 || !strings.Contains(first, c.where) {
			t.Errorf("%s: exit %d, first failure %q, want it at %s\n%s", c.name, code, first, c.where, out)
		}
	}
	if out, code := r.cli("verify", "--from-dir", clean); code != 0 {
		t.Fatalf("clean copy: %d\n%s", code, out)
	}

	// No event content, and no file name, in the function's logs.
	logs, err := os.ReadFile(filepath.Join(r.p.data, "logs", "functions", "audit-append.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"jane-doe", "0b7f1c4e-2a8e-4d5e-9a57-0d2f3c4b5a69", "ev-00"} {
		if bytes.Contains(logs, []byte(bad)) {
			t.Errorf("function log contains %q", bad)
		}
	}
	if !bytes.Contains(logs, []byte("malformed event dead-lettered")) {
		t.Errorf("the malformed event was not dead-lettered:\n%s", logs)
	}
}

// TestAuditAppendThroughput measures (does not assert) durable events
// appended per second by the real function, against the rate the same
// publishers put them on JetStream in the same run, and verify's speed.
func TestAuditAppendThroughput(t *testing.T) {
	if os.Getenv("PULSEVAULT_BENCH") == "" {
		t.Skip("a measurement, not a check: run with PULSEVAULT_BENCH=1")
	}
	r := startAuditRig(t, 1, map[string]string{"AUDIT_BATCH_WAIT": "50ms"})
	const n = 50000
	start := time.Now()
	r.publish(n, 8, 0) // the writers have not started: the backlog waits in the stream
	pubRate := n / time.Since(start).Seconds()
	start = time.Now()
	r.wake(1)
	r.waitHead(n, 5*time.Minute)
	appendRate := n / time.Since(start).Seconds()
	r.checkpoint()
	out, code := r.cli("verify")
	if code != 0 {
		t.Fatalf("verify: %s", out)
	}
	t.Logf("baseline JetStream publish: %.0f events/s; audit-append (1 replica, batches of up to 1000): %.0f durable events/s (%.2fx)\n%s",
		pubRate, appendRate, appendRate/pubRate, out)
}

// cliSplit runs `pulsevault audit ARGS` and returns stdout, stderr and the exit code.
func (r *auditRig) cliSplit(args ...string) (string, string, int) {
	r.t.Helper()
	cmd := exec.Command(r.bin, append([]string{"audit"}, args...)...)
	cmd.Env = append(os.Environ(), r.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	}
	r.t.Fatalf("audit %v: %v", args, err)
	return "", "", -1
}

// Regression (issue 15, finding 11): verify says loudly when it trusts the
// keys published in the audited bucket itself, fails with a pinned key that
// did not sign the checkpoints, and fails on a batch or checkpoint that has
// a second version (the locked bucket refuses to delete or shorten a version,
// but accepts new ones), naming it, even when the new version holds the same
// bytes.
func TestAuditVerifyKeysAndVersions(t *testing.T) {
	r := startAuditRig(t, 1, map[string]string{"AUDIT_BATCH_WAIT": "20ms"})
	r.wake(1)
	r.publish(40, 2, 0)
	r.waitHead(40, 60*time.Second)
	r.checkpoint()
	r.publish(40, 2, 40)
	r.waitHead(80, 60*time.Second)
	r.checkpoint()
	pinned := "--public-key=" + base64.StdEncoding.EncodeToString(r.pub)

	stdout, stderr, code := r.cliSplit("verify")
	if code != 0 || !strings.Contains(stdout, "RESULT: OK") {
		t.Fatalf("verify: exit %d\n%s%s", code, stdout, stderr)
	}
	for name, out := range map[string]string{"stderr": stderr, "report": stdout} {
		if !strings.Contains(out, "not pinned") || !strings.Contains(out, "trusts the public keys found in the audited bucket") {
			t.Errorf("verify without --public-key: the %s does not warn that it trusts the bucket's keys:\n%s", name, out)
		}
	}
	stdout, stderr, code = r.cliSplit("verify", pinned)
	if code != 0 || strings.Contains(stdout+stderr, "not pinned") || !strings.Contains(stdout, "versions        checked on") {
		t.Fatalf("pinned verify: exit %d\n%s%s", code, stdout, stderr)
	}
	other, _, _ := ed25519.GenerateKey(nil)
	if stdout, _, code := r.cliSplit("verify", "--public-key="+base64.StdEncoding.EncodeToString(other)); code != 1 || !strings.Contains(stdout, "signature") {
		t.Fatalf("verify pinned to a key that signed nothing: exit %d\n%s", code, stdout)
	}

	batches, checkpoints := batchKeys(t, r.download())
	if len(batches) < 2 || len(checkpoints) < 2 {
		t.Fatalf("batches %v checkpoints %v", batches, checkpoints)
	}
	ctx := context.Background()
	for _, k := range []string{filepath.ToSlash(batches[0]), filepath.ToSlash(checkpoints[0])} {
		rc, _, err := r.st.Get(ctx, r.cfg.AuditBucket, k, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		same, _ := io.ReadAll(rc)
		rc.Close()
		ret := storage.Compliance(1)
		if _, err := r.st.PutBytes(ctx, r.cfg.AuditBucket, k, same, storage.PutOptions{Retention: &ret}); err != nil {
			t.Fatalf("write a second version of %s: %v", k, err)
		}
	}
	stdout, _, code = r.cliSplit("verify", pinned)
	if code != 1 {
		t.Fatalf("verify with second versions: exit %d\n%s", code, stdout)
	}
	t.Logf("verify with second versions:\n%s", stdout)
	for _, k := range []string{batches[0], checkpoints[0]} {
		if !strings.Contains(stdout, filepath.ToSlash(k)+": 2 versions") {
			t.Errorf("the report does not name %s as having 2 versions:\n%s", k, stdout)
		}
	}
}
