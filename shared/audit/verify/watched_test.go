package verify

import (
	"context"
	"testing"
	"time"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/audit/record"
	"github.com/mieweb/pulsevault/shared/topology"
)

// who-watched and what-watched join accesses and refusals to the person
// the grant was issued to; a refusal with no genuine grant names nobody.
func TestWatchedJoinsGrantsToPeople(t *testing.T) {
	dir := t.TempDir()
	v1, v2 := "3f2b8c1e-5d4a-4e6b-9c7d-0a1b2c3d4e5f", "9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4"
	g1, g2 := "0b7f1c4e-2a8e-4d5e-9a57-0d2f3c4b5a69", "6f1d3c2b-0a9e-4b8c-8d7e-1f2a3b4c5d6e"
	tm := time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC)
	evs := []event.Event{
		{ID: "1", Actor: "alice", Action: event.URLSigned, Object: v1, Grant: g1, Outcome: event.Success},
		{ID: "2", Actor: "service:media", Action: event.MediaAccessed, Object: v1, Grant: g1, Outcome: event.Success, Reason: "m3u8"},
		{ID: "3", Actor: "bob", Action: event.URLSigned, Object: v2, Grant: g2, Outcome: event.Success},
		{ID: "4", Actor: "service:media", Action: event.AccessDenied, Object: v2, Grant: g2, Outcome: event.Denied, Reason: "out-of-scope"},
		{ID: "5", Actor: "service:media", Action: event.AccessDenied, Outcome: event.Denied, Reason: "bad-signature"},
		{ID: "6", Actor: "service:upload-finalize", Action: event.VideoFinalized, Object: v1, Outcome: event.Success},
	}
	for i := range evs {
		evs[i].V, evs[i].Time = 1, tm.Add(time.Duration(i)*time.Second)
	}
	recs, _ := record.Chain(0, record.GenesisHash, evs)
	var data []byte
	for _, r := range recs {
		l, _ := r.Line()
		data = append(data, l...)
	}
	k, _ := topology.AuditBatchKey("2026-11-03", 1, uint64(len(recs)))
	put(t, dir, k, data)

	who, err := Watched(context.Background(), Dir(dir), v1, "")
	if err != nil || len(who) != 2 || who[0].Person != "alice" || who[1].Person != "alice" || who[1].Action != event.MediaAccessed {
		t.Fatalf("who-watched v1: %+v %v", who, err)
	}
	what, err := Watched(context.Background(), Dir(dir), "", "bob")
	if err != nil || len(what) != 2 || what[1].Action != event.AccessDenied || what[1].Video != v2 || what[1].Reason != "out-of-scope" {
		t.Fatalf("what-watched bob: %+v %v", what, err)
	}
	all, _ := Watched(context.Background(), Dir(dir), "", "")
	if len(all) != 5 || all[4].Person != "" {
		t.Fatalf("all: %+v", all)
	}
}
