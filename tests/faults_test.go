package tests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/openfaas/faas-provider/types"

	transcodefn "github.com/mieweb/pulsevault/functions/transcode"
	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/faas/connector"
	"github.com/mieweb/pulsevault/shared/ingest/tusclient"
	"github.com/mieweb/pulsevault/shared/ingest/videoid"
	"github.com/mieweb/pulsevault/shared/media/encode"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
	"github.com/mieweb/pulsevault/shared/topology"
)

// faultSizes reads the suite's size: PULSEVAULT_FAULTS=1 is the full run
// (`make test-faults`), PULSEVAULT_FAULT_TRIALS=N overrides the count.
func faultSizes(t *testing.T, bounded, full int) int {
	n := bounded
	if os.Getenv("PULSEVAULT_FAULTS") == "1" {
		n = full
	}
	if v := os.Getenv("PULSEVAULT_FAULT_TRIALS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("PULSEVAULT_FAULT_TRIALS=%q: want a positive number", v)
		}
	}
	return n
}

// faultSeed is PULSEVAULT_FAULT_SEED, or a fresh seed to print.
func faultSeed(t *testing.T) uint64 {
	if v := os.Getenv("PULSEVAULT_FAULT_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("PULSEVAULT_FAULT_SEED=%q: want a number", v)
		}
		return s
	}
	return uint64(time.Now().UnixNano())
}

// The process faults, each injected at a random point of one upload's way
// through the pipeline.
var processFaults = []string{
	"kill-upload", "kill-upload-finalize", "kill-transcode", "kill-audit-append",
	"restart-connector", "restart-nats", "restart-s3",
}

// TestFaultsProcess uploads a clip per trial, breaks one piece of the
// stack at a random moment, and checks the invariants once the video
// settles: one video per upload, complete (rejected for a corrupt file),
// every playlist entry stored, the staged upload gone, no JetStream
// message pending or unacked; the audit log verifies every 10 trials and
// at the end.
func TestFaultsProcess(t *testing.T) {
	trials := faultSizes(t, len(processFaults)+1, 100)
	seed := faultSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed))
	t.Logf("PULSEVAULT_FAULT_SEED=%d trials=%d", seed, trials)
	r := startFaultRig(t)
	ctx := context.Background()
	dir := t.TempDir()
	good := ingestClip(t, dir, "clip", testclip.Options{Width: 320, Height: 568, Seconds: 2})
	whole, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(dir, "corrupt.mp4")
	if err := os.WriteFile(corrupt, whole[:len(whole)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	// The client is slowed so that a fault can land mid-PATCH.
	client := &tusclient.Client{Endpoint: r.gateway + "/function/upload/", Token: r.token, ChunkSize: 64 << 10,
		HTTP: &http.Client{Transport: slowTransport{rate: 128 << 10}}}

	violations := 0
	var took []time.Duration
	violate := func(trial int, fault string, format string, args ...any) {
		violations++
		t.Errorf("trial %d (seed %d, fault %s): %s", trial, seed, fault, fmt.Sprintf(format, args...))
	}
	for trial := 1; trial <= trials; trial++ {
		// Every fault kind at least once, then at random; every 8th upload is corrupt.
		fault := processFaults[(trial-1)%len(processFaults)]
		if trial > len(processFaults) {
			fault = processFaults[rng.IntN(len(processFaults))]
		}
		file, bad := good, trial%8 == 0
		if bad {
			file = corrupt
		}
		delay := time.Duration(rng.Int64N(int64(1500 * time.Millisecond)))
		// Counted per trial, so one lost video is one violation, not one
		// in every trial after it.
		before, err := r.videoCount(ctx)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()

		uploaded := make(chan string, 1)
		injected := make(chan string, 1)
		go func() { injected <- r.inject(fault, delay, uploaded) }()
		client.State = tusclient.OpenState(filepath.Join(t.TempDir(), "state.json"))
		var loc string
		var upErr error
		attempts := 0
		for attempts < 30 { // the client resumes the same upload after each failure
			attempts++
			if loc, upErr = client.Upload(ctx, file, map[string]string{"filetype": "video/mp4"}); upErr == nil {
				break
			}
			time.Sleep(time.Second)
		}
		upTook := time.Since(start)
		uploaded <- loc
		note := <-injected
		if upErr != nil {
			violate(trial, fault, "upload never completed: %v (%s)", upErr, note)
			continue
		}
		id := videoid.FromUpload(path.Base(loc))

		var v *meta.Video
		var status meta.Status
		deadline := time.Now().Add(4 * time.Minute) // a killed connector's message waits out its 60 s ack wait
		for ; time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if v, status = r.metaStatus(ctx, id); status == meta.Complete || status == meta.Rejected || status == meta.Failed {
				break
			}
		}
		took = append(took, time.Since(start))
		switch {
		case bad && (status == meta.Rejected || status == meta.Failed):
			if v.Reason == "" {
				violate(trial, fault, "video %s %s without a reason", id, status)
			}
		case bad:
			violate(trial, fault, "corrupt upload %s ended %q, want rejected or failed", id, status)
		case status != meta.Complete:
			violate(trial, fault, "video %s is %q after 4 min, want complete (%s); meta %+v", id, status, note, v)
		default:
			if missing, err := r.missingMedia(ctx, id); err != nil || len(missing) > 0 {
				violate(trial, fault, "video %s: playlist entries missing from the store: %v %v", id, missing, err)
			}
			if n, err := r.versions(ctx, v.Original.Key); err != nil || n != 1 {
				violate(trial, fault, "video %s: the original is stored %d times, want once (%v)", id, n, err)
			}
		}
		if n, err := r.videoCount(ctx); err != nil || n != before+1 {
			violate(trial, fault, "%d new videos after one upload, want exactly 1 (%v)", n-before, err)
		}
		if v != nil {
			if err := r.settle(ctx, 90*time.Second, func() (string, bool) {
				ks := r.staged(v.UploadID)
				return fmt.Sprint(ks), len(ks) == 0
			}); err != nil {
				violate(trial, fault, "staged upload left: %v\nwhat the functions logged about it:\n%s", err, r.logsAbout(v.UploadID, "upload", "upload-finalize"))
			}
		}
		if err := r.settle(ctx, 3*time.Minute, func() (string, bool) {
			u, err := r.unsettled(ctx)
			return fmt.Sprint(u, err), err == nil && len(u) == 0
		}); err != nil {
			violate(trial, fault, "JetStream consumers not settled: %v", err)
		}
		t.Logf("trial %d: %s %s, %s; uploaded in %s (%d client attempts) → %s in %s", trial, fault, map[bool]string{true: "corrupt", false: "clip"}[bad],
			note, upTook.Round(time.Millisecond), attempts, status, took[len(took)-1].Round(time.Millisecond))
		if trial%10 == 0 || trial == trials {
			if out, err := r.auditVerify(); err != nil {
				violate(trial, fault, "audit verify: %v\n%s", err, out)
			}
		}
	}
	fmt.Printf("SUMMARY family=process trials=%d violations=%d seed=%d\n", trials, violations, seed)
	t.Logf("upload → settled per trial: %v", took)
}

// inject applies fault after delay, measured from the start of the upload
// or, for the functions that run after it, from its end (uploaded).
func (r *faultRig) inject(fault string, delay time.Duration, uploaded <-chan string) string {
	switch fault {
	case "kill-upload-finalize", "kill-audit-append":
		<-uploaded
		delay /= 3
		time.Sleep(delay)
	case "kill-transcode":
		<-uploaded
		time.Sleep(delay)
	default:
		time.Sleep(delay)
	}
	at := fmt.Sprintf("at +%s", delay.Round(time.Millisecond))
	switch fault {
	case "restart-connector":
		r.restartConnector()
	case "restart-nats":
		if err := r.restartNATS(time.Duration(rand.Int64N(int64(time.Second)))); err != nil {
			r.t.Errorf("restart NATS: %v", err)
		}
	case "restart-s3":
		if err := r.killS3(); err != nil {
			r.t.Errorf("kill versitygw: %v", err)
		}
	default:
		fn := fault[len("kill-"):]
		at = fmt.Sprintf("%d %s replicas killed %s", r.killFunction(fn), fn, at)
	}
	return at
}

// settle polls ok until it holds or within passes; the error carries the
// last state seen.
func (r *faultRig) settle(ctx context.Context, within time.Duration, ok func() (string, bool)) error {
	deadline := time.Now().Add(within)
	for {
		state, done := ok()
		if done {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("after %s: %s", within, state)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestFaultsNetwork: uploads cut at random byte offsets and resumed (the
// stored bytes hash to the source's), a 1 KB/s client that does not hold
// up others, and a client that stops mid-PATCH, which the server times out
// while keeping what arrived.
func TestFaultsNetwork(t *testing.T) {
	cuts := faultSizes(t, 10, 100)
	seed := faultSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	t.Logf("PULSEVAULT_FAULT_SEED=%d cuts=%d", seed, cuts)
	s := startIngestStack(t)
	ctx := context.Background()
	clip := ingestClip(t, t.TempDir(), "net", testclip.Options{Width: 640, Height: 360, Seconds: 3})
	whole, err := os.ReadFile(clip)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(whole))
	want := sha256.Sum256(whole)
	failures := 0
	fail := func(format string, args ...any) {
		failures++
		t.Errorf("(seed %d) "+format, append([]any{seed}, args...)...)
	}
	// finish resumes u from the server's offset and checks the stored
	// bytes. A 409 means the interrupted PATCH was still being stored
	// when the offset was read: read it again, as a tus client does.
	conflicts := 0
	finish := func(what, u string, sent int64) (off int64) {
		var end int64
		var err error
		for range 10 {
			if off, err = s.tusOffset(ctx, u); err != nil || off > sent {
				fail("%s: offset after the cut %d (sent %d): %v", what, off, sent, err)
				return off
			}
			if end, err = s.tusPatch(ctx, u, off, size, bytes.NewReader(whole[off:])); err == nil || !errors.Is(err, errConflict) {
				break
			}
			conflicts++
			time.Sleep(500 * time.Millisecond)
		}
		if err != nil || end != size {
			fail("%s: resume at %d: offset %d, %v", what, off, end, err)
			return off
		}
		got, n, err := s.stagedSHA256(ctx, u)
		if err != nil || n != size || got != want {
			fail("%s: stored %d of %d bytes, SHA-256 match %v (%v)", what, n, size, got == want, err)
		}
		return off
	}

	// 1. Cuts at random offsets, each resumed from what the server kept.
	for i := range cuts {
		u, err := s.tusCreate(ctx, len(whole))
		if err != nil {
			t.Fatal(err)
		}
		at := 1 + rng.Int64N(size-1)
		if _, err := s.tusPatch(ctx, u, 0, size, &cutAt{r: bytes.NewReader(whole), left: at}); err == nil {
			fail("cut %d at byte %d: the PATCH succeeded", i, at)
			continue
		}
		finish(fmt.Sprintf("cut %d at byte %d of %d", i, at, size), u, at)
	}

	// 2. A 1 KB/s client while 3 normal uploads run.
	slowURL, err := s.tusCreate(ctx, len(whole))
	if err != nil {
		t.Fatal(err)
	}
	slowCtx, stopSlow := context.WithCancel(ctx)
	counted := &countingReader{r: &throttle{r: bytes.NewReader(whole), rate: 1 << 10}}
	slowDone := make(chan error, 1)
	go func() {
		_, err := s.tusPatch(slowCtx, slowURL, 0, size, counted)
		slowDone <- err
	}()
	for counted.n.Load() < 4<<10 { // under way for a few seconds
		time.Sleep(100 * time.Millisecond)
	}
	var wg sync.WaitGroup
	durations := make([]time.Duration, 3)
	errs := make([]error, 3)
	for i := range durations {
		wg.Go(func() {
			start := time.Now()
			c := &tusclient.Client{Endpoint: s.gateway + "/function/upload/", Token: s.token}
			loc, err := c.Upload(ctx, clip, map[string]string{"filetype": "video/mp4"})
			if err == nil {
				var got [32]byte
				if got, _, err = s.stagedSHA256(ctx, loc); err == nil && got != want {
					err = errors.New("stored bytes differ")
				}
			}
			durations[i], errs[i] = time.Since(start), err
		})
	}
	wg.Wait()
	select {
	case err := <-slowDone:
		fail("the slow upload ended before the normal ones did: %v", err)
	default:
	}
	for i, err := range errs {
		if err != nil {
			fail("normal upload %d beside a 1 KB/s client: %v", i, err)
		}
	}
	stopSlow()
	<-slowDone
	t.Logf("3 uploads of %d bytes beside a 1 KB/s client (it had sent %d bytes): %v", size, counted.n.Load(), durations)
	t.Logf("slow upload resumed from byte %d of the %d sent", finish("slow client", slowURL, counted.n.Load()), counted.n.Load())

	// 3. A client that sends 32 KiB and stops: the server gives up on the
	// request (tusd's network timeout) and keeps those bytes.
	stallURL, err := s.tusCreate(ctx, len(whole))
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	stallStart := time.Now()
	stallErr := make(chan error, 1)
	go func() {
		_, err := s.tusPatch(ctx, stallURL, 0, size, io.MultiReader(bytes.NewReader(whole[:32<<10]), &blockUntil{c: release}))
		stallErr <- err
	}()
	select {
	case err = <-stallErr:
		t.Logf("stalled PATCH ended by the server after %s: %v", time.Since(stallStart).Round(time.Millisecond), err)
	case <-time.After(5 * time.Minute):
		fail("a stalled PATCH was not timed out by the server within 5 min")
	}
	close(release)
	if err := (&faultRig{ingestStack: s}).settle(ctx, time.Minute, func() (string, bool) {
		n, err := s.inFlight("upload")
		return fmt.Sprint(n, err), err == nil && n == 0
	}); err != nil {
		fail("upload invocations still in flight after the stall: %v", err)
	}
	t.Logf("stalled upload resumed from byte %d of the 32768 sent", finish("stalled client", stallURL, 32<<10))

	t.Logf("resumes that met a 409 (the cut PATCH still being stored) and read the offset again: %d", conflicts)
	trials := cuts + 2
	fmt.Printf("SUMMARY family=network trials=%d violations=%d seed=%d\n", trials, failures, seed)
}

// cutAt reads through r and fails once left bytes are read: a connection
// that drops mid-body.
type cutAt struct {
	r    io.Reader
	left int64
}

func (c *cutAt) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errors.New("connection cut")
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// blockUntil is a body that sends nothing more until c is closed.
type blockUntil struct{ c chan struct{} }

func (b *blockUntil) Read([]byte) (int, error) {
	<-b.c
	return 0, io.EOF
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestFaultsTranscodeKilledOnEveryDelivery: a transcode replica SIGKILLed
// on every delivery of a job (issue #11). The connector dead-letters the
// job after CONNECTOR_MAX_DELIVER tries; the transcode function's
// /dead-letters path, called by the connector on the schedule its
// annotation asks for, then marks what the dead job claimed failed with
// the machine reason worker-lost: the video ends failed instead of
// processing for ever, the failure is audited, and no consumer is left
// with anything pending.
func TestFaultsTranscodeKilledOnEveryDelivery(t *testing.T) {
	t.Setenv("CONNECTOR_MAX_DELIVER", "2") // read by the rig's connector
	r := startFaultRig(t)
	ann := map[string]string{"topic": topology.SubjectTranscodeJobs, connector.ScheduleAnnotation: "/dead-letters@10s"}
	r.system(http.MethodPut, "/system/functions", types.FunctionDeployment{Service: "transcode", Image: "pulsevault-transcode:dev",
		Annotations: &ann, EnvVars: map[string]string{"exec_timeout": "5m", "write_timeout": "5m", "TRANSCODE_MAX_DELIVER": "2"}}, http.StatusAccepted)
	ctx := context.Background()
	clip := ingestClip(t, t.TempDir(), "clip", testclip.Options{Width: 320, Height: 568, Seconds: 2})
	c := &tusclient.Client{Endpoint: r.gateway + "/function/upload/", Token: r.token}
	loc, err := c.Upload(ctx, clip, map[string]string{"filetype": "video/mp4"})
	if err != nil {
		t.Fatal(err)
	}
	id := videoid.FromUpload(path.Base(loc))

	// Kill every transcode replica until every job has been given up on:
	// something is dead-lettered and the jobs' durable has nothing left.
	js := r.bus.JetStream()
	jobs := connector.DurableName("transcode", topology.SubjectTranscodeJobs)
	deadLettered := func() bool {
		dlq, err := js.Stream(ctx, "PULSE_DLQ")
		if err != nil {
			return false
		}
		if _, err := dlq.GetLastMsgForSubject(ctx, transcodefn.DeadLetterSubject); err != nil {
			return false
		}
		cons, err := js.Consumer(ctx, "PULSE_JOBS", jobs)
		if err != nil {
			return false
		}
		info, err := cons.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}
	kills := 0
	for deadline := time.Now().Add(3 * time.Minute); !deadLettered(); time.Sleep(100 * time.Millisecond) {
		kills += r.killFunction("transcode")
		if time.Now().After(deadline) {
			t.Fatalf("no transcode job dead-lettered after 3 min of kills (%d kills)", kills)
		}
	}
	deadAt := time.Now()

	var v *meta.Video
	var status meta.Status
	if err := r.settle(ctx, 3*time.Minute, func() (string, bool) {
		v, status = r.metaStatus(ctx, id)
		return string(status), status == meta.Failed || status == meta.Complete
	}); err != nil {
		t.Fatalf("video %s not settled after its jobs were dead-lettered (%d kills): %v", id, kills, err)
	}
	t.Logf("%d kills; video failed %s after the last job was dead-lettered (schedule every 10s, jittered start)",
		kills, time.Since(deadAt).Round(time.Millisecond))
	var states []string
	for _, rd := range v.Renditions {
		states = append(states, rd.Name+"="+rd.State+"/"+rd.Error)
	}
	if status != meta.Failed || v.Reason != "transcode-failed" {
		t.Errorf("video %s is %s %q, want failed transcode-failed; renditions %v", id, status, v.Reason, states)
	}
	for _, rd := range v.Renditions {
		if rd.State != meta.RenditionFailed || rd.Error != encode.CodeWorkerLost {
			t.Errorf("rendition %s: %s %q, want failed %s (all: %v)", rd.Name, rd.State, rd.Error, encode.CodeWorkerLost, states)
		}
	}
	if m, err := r.auditStream(ctx).GetLastMsgForSubject(ctx, topology.SubjectAudit+"."+event.TranscodeFailed); err != nil {
		t.Errorf("no %s audit event: %v", event.TranscodeFailed, err)
	} else {
		var e event.Event
		if err := json.Unmarshal(m.Data, &e); err != nil || e.Object != id || e.Reason != encode.CodeWorkerLost {
			t.Errorf("last %s audit event %s, want video %s reason %s", event.TranscodeFailed, m.Data, id, encode.CodeWorkerLost)
		}
	}
	if err := r.settle(ctx, 2*time.Minute, func() (string, bool) {
		u, err := r.unsettled(ctx)
		return fmt.Sprint(u, err), err == nil && len(u) == 0
	}); err != nil {
		t.Errorf("JetStream consumers not settled: %v", err)
	}
	if !strings.Contains(r.connErr.String(), `"path":"/dead-letters"`) {
		t.Error("the connector log shows no /dead-letters schedule")
	}
}

// auditStream is PULSE_AUDIT, where every audit event is published.
func (r *faultRig) auditStream(ctx context.Context) jetstream.Stream {
	r.t.Helper()
	s, err := r.bus.JetStream().Stream(ctx, "PULSE_AUDIT")
	if err != nil {
		r.t.Fatal(err)
	}
	return s
}
