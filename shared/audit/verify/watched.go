package verify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/audit/record"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Access is one line of who-watched / what-watched: a grant (url.signed),
// an access through it (media.accessed) or a refusal (access.denied), with
// the person the grant was issued to.
type Access struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Action  string    `json:"action"`
	Outcome string    `json:"outcome"`
	Reason  string    `json:"reason,omitempty"`
	Video   string    `json:"video,omitempty"`
	Grant   string    `json:"grant,omitempty"`
	Person  string    `json:"person"` // "" when the record names no grant the log issued
}

// Watched reads the log in src in order and returns the grants, accesses
// and refusals of video (when set) or of the person user (when set). It
// trusts the records as they are: run Verify first.
func Watched(ctx context.Context, src Source, video, user string) ([]Access, error) {
	keys, err := src.List(ctx)
	if err != nil {
		return nil, err
	}
	var batches []topology.AuditKey
	byKey := map[topology.AuditKey]string{}
	for _, k := range keys {
		if pk := topology.ParseAuditKey(k); pk.Kind == topology.AuditKindBatch {
			batches = append(batches, pk)
			byKey[pk] = k
		}
	}
	slices.SortFunc(batches, func(a, b topology.AuditKey) int { return cmpU(a.First, b.First) })
	type issued struct{ person, video string }
	grants := map[string]issued{}
	var out []Access
	for _, b := range batches {
		data, err := src.Read(ctx, byKey[b])
		if err != nil {
			return nil, err
		}
		for line := range bytes.Lines(data) {
			r, err := record.ParseLine(record.LeafData(line))
			if err != nil {
				return nil, fmt.Errorf("%s: %w (run audit verify)", byKey[b], err)
			}
			a := Access{Seq: r.Seq, Time: r.Time, Action: r.Action, Outcome: r.Outcome, Reason: r.Reason, Video: r.Object, Grant: r.Grant}
			switch r.Action {
			case event.URLSigned:
				a.Person = r.Actor
				if r.Grant != "" {
					grants[r.Grant] = issued{r.Actor, r.Object}
				}
			case event.MediaAccessed, event.AccessDenied:
				if g, ok := grants[r.Grant]; ok && r.Grant != "" {
					a.Person = g.person
					if a.Video == "" {
						a.Video = g.video
					}
				}
			default:
				continue
			}
			if (video != "" && a.Video != video) || (user != "" && a.Person != user) {
				continue
			}
			out = append(out, a)
		}
	}
	return out, nil
}

// WriteAccesses prints accesses as a table.
func WriteAccesses(w io.Writer, as []Access) {
	fmt.Fprintf(w, "%-8s %-20s %-15s %-8s %-36s %-24s %s\n", "SEQ", "TIME", "ACTION", "OUTCOME", "VIDEO", "PERSON", "GRANT / REASON")
	for _, a := range as {
		person := a.Person
		if person == "" {
			person = "(no issued grant)"
		}
		detail := a.Grant
		if a.Reason != "" {
			detail += " " + a.Reason
		}
		fmt.Fprintf(w, "%-8d %-20s %-15s %-8s %-36s %-24s %s\n", a.Seq, a.Time.UTC().Format(time.RFC3339), a.Action, a.Outcome, a.Video, person, detail)
	}
}
