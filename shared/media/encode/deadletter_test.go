package encode_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/media/encode"
	"github.com/mieweb/pulsevault/shared/media/ladder"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
	"github.com/mieweb/pulsevault/shared/topology"
)

const deadLetters = "pulse.dlq.transcode"

// deadLetter publishes data on the transcode dead-letter subject as the
// connector does: through JetStream, with bus's headers.
func (r *rig) deadLetter(data string) {
	r.t.Helper()
	m := &nats.Msg{Subject: deadLetters, Data: []byte(data), Header: nats.Header{}}
	m.Header.Set(bus.HeaderDLQSubject, topology.SubjectTranscodeJobs)
	m.Header.Set(bus.HeaderDLQError, "function transcode answered 502 after 1.2s")
	m.Header.Set(bus.HeaderDLQDeliveries, "2")
	if _, err := r.bus.JetStream().PublishMsg(context.Background(), m); err != nil {
		r.t.Fatal(err)
	}
}

func job(id, rendition string) string {
	b, _ := json.Marshal(ladder.Job{Video: id, Rendition: rendition})
	return string(b)
}

// TestDeadLetterDrain: a dead group job fails every rung it claimed, with
// the machine reason, the audit event and the usual status rules; a dead
// job whose renditions are ready leaves them ready; a message that is not a
// job is dropped without logging it; a second drain is a no-op.
func TestDeadLetterDrain(t *testing.T) {
	r := newRig(t)
	r.w.Config.Fanout = encode.FanoutGrouped
	id, v := r.stage(testclip.Options{Width: 480, Height: 854, Seconds: 2}, nil)
	if names := names(v); names != "240p,360p,480p,audio" {
		t.Fatalf("plan %s", names)
	}
	ctx := context.Background()
	// 240p takes the audio along and both become ready: the video is ready.
	if res := r.runJobs(id, v, 1, "240p")["240p"]; res.Status != http.StatusOK {
		t.Fatalf("240p: %+v", res)
	}
	// The 360p job claims 360p and 480p, then its worker is killed on every
	// delivery: the claims stay running, as a SIGKILL leaves them.
	if _, err := r.meta.Update(ctx, id, func(v *meta.Video) error {
		_, err := encode.Claim(v, "360p", encode.FanoutGrouped)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := r.get(id); got.Status != meta.Ready {
		t.Fatalf("before the drain: %s (%s)", got.Status, states(got))
	}
	r.deadLetter(job(id, "360p"))
	r.deadLetter(job(id, "240p")) // dead letter of work that did land: nothing to fail
	r.deadLetter(`{"video":"` + phi + `","rendition":"240p"}`)

	rep, err := r.w.DrainDeadLetters(ctx, r.bus, deadLetters)
	if err != nil {
		t.Fatal(err)
	}
	if want := (encode.DrainReport{Messages: 3, Failed: 2, Malformed: 1}); rep != want {
		t.Errorf("drain %+v, want %+v", rep, want)
	}
	got := r.get(id)
	for _, rd := range got.Renditions {
		want, code := meta.RenditionFailed, encode.CodeWorkerLost
		if rd.Name == "240p" || rd.Name == "audio" {
			want, code = meta.RenditionReady, ""
		}
		if rd.State != want || rd.Error != code {
			t.Errorf("%s: %s %q, want %s %q", rd.Name, rd.State, rd.Error, want, code)
		}
	}
	if got.Status != meta.Complete {
		t.Errorf("video %s (%s), want complete: every rendition ended, 240p playable", got.Status, states(got))
	}
	for _, e := range []string{"transcode.360p.worker-lost", "transcode.480p.worker-lost"} {
		if !slices.Contains(got.Errors, e) {
			t.Errorf("errors %q lack %s", got.Errors, e)
		}
	}
	var failedEvents []string
	for _, e := range r.auditEvents() {
		if e.Action == event.TranscodeFailed && e.Object == id {
			failedEvents = append(failedEvents, e.Reason)
		}
	}
	if !slices.Equal(failedEvents, []string{encode.CodeWorkerLost, encode.CodeWorkerLost}) {
		t.Errorf("transcode.failed events %q, want two with %s", failedEvents, encode.CodeWorkerLost)
	}
	if strings.Contains(r.logs.String(), phi) {
		t.Errorf("logs carry the dead letter's contents:\n%s", r.logs.String())
	}

	// Nothing left: the second drain touches nothing.
	_, etag, err := r.meta.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := r.w.DrainDeadLetters(ctx, r.bus, deadLetters); err != nil || rep != (encode.DrainReport{}) {
		t.Errorf("second drain: %+v, %v", rep, err)
	}
	if _, again, _ := r.meta.Get(ctx, id); again != etag {
		t.Error("the second drain rewrote meta.json")
	}
	cons, err := r.bus.JetStream().Consumer(ctx, "PULSE_DLQ", topology.DurableTranscodeDeadLetters)
	if err != nil {
		t.Fatal(err)
	}
	if info := cons.CachedInfo(); info.NumPending != 0 || info.NumAckPending != 0 {
		t.Errorf("consumer left %d pending, %d unacked", info.NumPending, info.NumAckPending)
	}
}

// TestDeadLetterOfLoneJobFailsVideo: under the rendition policy, a video
// whose only video rung's job died ends failed with the machine reason.
func TestDeadLetterOfLoneJobFailsVideo(t *testing.T) {
	r := newRig(t)
	r.w.Config.Fanout = encode.FanoutRendition
	id, v := r.stage(testclip.Options{Width: 320, Height: 240, Seconds: 1, NoAudio: true}, nil)
	if names := names(v); names != "240p" {
		t.Fatalf("plan %s", names)
	}
	ctx := context.Background()
	if _, err := r.meta.Update(ctx, id, func(v *meta.Video) error {
		_, err := encode.Claim(v, "240p", encode.FanoutRendition)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	r.deadLetter(job(id, "240p"))
	rep, err := r.w.DrainDeadLetters(ctx, r.bus, deadLetters)
	if err != nil || rep.Failed != 1 {
		t.Fatalf("drain %+v, %v", rep, err)
	}
	if got := r.get(id); got.Status != meta.Failed || got.Reason != "transcode-failed" || got.Renditions[0].Error != encode.CodeWorkerLost {
		t.Errorf("video %s %q (%s), want failed transcode-failed with 240p %s", got.Status, got.Reason, states(got), encode.CodeWorkerLost)
	}
}

func states(v *meta.Video) string {
	var s []string
	for _, r := range v.Renditions {
		s = append(s, r.Name+"="+r.State+"/"+r.Error)
	}
	return strings.Join(s, " ")
}
