package encode_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/media/encode"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
)

// A PutObject over the original by the service credentials (a new,
// unlocked latest version on the real versitygw) is not what transcode
// reads: every rendition is encoded from the pinned, locked version, and
// the overwrite is counted and audited once.
func TestShadowedOriginalIsIgnored(t *testing.T) {
	r := newRig(t)
	reg := prometheus.NewRegistry()
	m, err := encode.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	r.w.Metrics = m
	id, v := r.stage(testclip.Options{NoAudio: true, Seconds: 2}, nil)
	ctx := context.Background()
	garbage := bytes.Repeat([]byte("not the original\n"), 4096)
	over, err := r.st.PutBytes(ctx, r.cfg.MediaBucket, v.Original.Key, garbage, storage.PutOptions{ContentType: "video/mp4"})
	if err != nil {
		t.Fatal(err)
	}
	if over.VersionID == "" || over.VersionID == v.Original.VersionID {
		t.Fatalf("the overwrite made version %q; pinned is %q", over.VersionID, v.Original.VersionID)
	}
	// The shadow is real: a plain GET returns it.
	rc, _, err := r.st.Get(ctx, r.cfg.MediaBucket, v.Original.Key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	latest, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(latest, garbage) {
		t.Fatal("a plain GET does not return the overwrite; the test shadows nothing")
	}

	for name, res := range r.runJobs(id, v, 1) {
		if res.Outcome != encode.OutcomeDone {
			t.Errorf("rendition %s: %+v (the overwrite was read?)", name, res)
		}
	}
	got := r.get(id)
	for _, rd := range got.Renditions {
		if rd.State != meta.RenditionReady {
			t.Errorf("rendition %s: %s %s", rd.Name, rd.State, rd.Error)
		}
	}
	if got.Original.VersionID != v.Original.VersionID || got.Original.SHA256 != v.Original.SHA256 {
		t.Fatalf("the pin moved: %+v", got.Original)
	}

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var counted float64
	for _, mf := range mfs {
		if mf.GetName() != "pulsevault_original_shadowed_total" {
			continue
		}
		for _, mm := range mf.GetMetric() {
			for _, l := range mm.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == "newer-version" {
					counted += mm.GetCounter().GetValue()
				}
			}
		}
	}
	if counted < 1 {
		t.Errorf("pulsevault_original_shadowed_total{reason=newer-version} = %v, want >= 1", counted)
	}
	var audited []event.Event
	for _, e := range r.auditEvents() {
		if e.Action == event.OriginalShadowed && e.Object == id {
			audited = append(audited, e)
		}
	}
	if len(audited) != 1 || audited[0].Reason != "newer-version" || audited[0].Outcome != event.Denied {
		t.Fatalf("audit of the overwrite: %+v, want one original.shadowed newer-version", audited)
	}
}
