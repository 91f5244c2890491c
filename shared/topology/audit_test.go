package topology

import "testing"

func TestAuditKeys(t *testing.T) {
	k, _ := AuditBatchKey("2026-11-03", 1, 1000)
	if k != "2026/11/03/000000000001-000000001000.jsonl" {
		t.Fatal(k)
	}
	if pk := ParseAuditKey(k); pk.Kind != AuditKindBatch || pk.Day != "2026-11-03" || pk.First != 1 || pk.Last != 1000 {
		t.Fatalf("%+v", pk)
	}
	ck, _ := AuditCheckpointKey("2026-11-03", 7)
	if pk := ParseAuditKey(ck); pk.Kind != AuditKindCheckpoint || pk.Size != 7 {
		t.Fatalf("%s %+v", ck, pk)
	}
	for _, bad := range []string{"2026/13/03/1-2.jsonl", "2026/11/03/5-2.jsonl", "2026/11/03/0-2.jsonl", "x/1-2.jsonl", "_canary/worm"} {
		if ParseAuditKey(bad).Kind != AuditKindOther {
			t.Errorf("%s parsed as a log object", bad)
		}
	}
	if _, err := AuditBatchKey("03/11/2026", 1, 2); err == nil {
		t.Error("bad day accepted")
	}
}
