// Package event defines PulseVault's audit events and the one helper every
// function uses to emit them. Events carry ids and machine codes only —
// never a file name, a patient detail or free text from a user.
package event

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"

	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Version is the event schema version.
const Version = 1

// Actions.
const (
	UploadCreated   = "upload.created"
	UploadRejected  = "upload.rejected"
	VideoFinalized  = "video.finalized"
	TranscodeDone   = "transcode.done"
	TranscodeFailed = "transcode.failed"
	URLSigned       = "url.signed"
	MediaAccessed   = "media.accessed"
	AccessDenied    = "access.denied"
	DeleteRefused   = "delete.refused"
	ConfigChanged   = "config.changed"
	// OriginalShadowed: the original's key has a newer version than the
	// one meta.json pins (reason newer-version or delete-marker); readers
	// ignore it and keep reading the pinned, locked version.
	OriginalShadowed = "original.shadowed"

	// The Pulse capture protocol (shared/pulse/server).
	PairingCreated    = "pairing.created"    // a signed-in person minted a pairing link (object: the artifact id)
	ArtifactReceived  = "artifact.received"  // the last byte of a Pulse upload arrived
	ViewLinkGranted   = "view-link.granted"  // a view token was minted
	ArtifactServed    = "artifact.served"    // a Pulse artifact's bytes were served (reason: the grant)
	ArtifactWithdrawn = "artifact.withdrawn" // the owner withdrew the video; its locked bytes stay

	// The embedded OpenID provider (shared/identity).
	LoginSucceeded = "login.succeeded" // embedded OpenID provider; actor is the user id
	LoginFailed    = "login.failed"    // actor the user id when known, never the typed name; reason a code
	Logout         = "logout"
)

// Outcomes.
const (
	Success = "success"
	Failure = "failure"
	Denied  = "denied"
)

// Event is one audited fact. Seq and the chain fields are assigned by
// audit-append when it appends the event to the log.
type Event struct {
	V         int       `json:"v"`
	ID        string    `json:"id"` // unique; redeliveries carry the same id
	Time      time.Time `json:"time"`
	Actor     string    `json:"actor"`            // JWT subject, or "service:<function>"
	Action    string    `json:"action"`           // one of the constants above
	Object    string    `json:"object,omitempty"` // video id
	Outcome   string    `json:"outcome"`
	Reason    string    `json:"reason,omitempty"` // a machine code such as "not-a-video", never user text
	RequestID string    `json:"request_id,omitempty"`
	Grant     string    `json:"grant,omitempty"` // playback grant id (UUID): url.signed issues it, media accesses and refusals name it
	// SHA256 is the hex SHA-256 of the bytes the event is about:
	// video.finalized carries the locked original's, so the signed log
	// vouches for the original an auditor later re-hashes.
	SHA256 string `json:"sha256,omitempty"`
}

// codeRe bounds what may appear in Action, Outcome and Reason: lower-case
// machine codes, so no user-supplied text can slip into the log.
var codeRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

var sha256Re = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Validate checks an event before it is published.
func (e Event) Validate() error {
	switch {
	case e.V != Version:
		return fmt.Errorf("audit: schema version %d, want %d", e.V, Version)
	case e.ID == "" || len(e.ID) > 64:
		return errors.New("audit: event id missing or too long")
	case e.Actor == "" || len(e.Actor) > 256:
		return errors.New("audit: actor missing or too long")
	case !codeRe.MatchString(e.Action):
		return fmt.Errorf("audit: action %q is not a code", e.Action)
	case !codeRe.MatchString(e.Outcome):
		return fmt.Errorf("audit: outcome %q is not a code", e.Outcome)
	case e.Reason != "" && !codeRe.MatchString(e.Reason):
		return errors.New("audit: reason must be a machine code")
	case e.Object != "" && uuid.Validate(e.Object) != nil:
		return errors.New("audit: object must be a video id (UUID)")
	case e.Grant != "" && uuid.Validate(e.Grant) != nil:
		return errors.New("audit: grant must be a grant id (UUID)")
	case e.SHA256 != "" && !sha256Re.MatchString(e.SHA256):
		return errors.New("audit: sha256 must be 64 lower-case hex digits")
	case e.Time.IsZero():
		return errors.New("audit: time missing")
	}
	return nil
}

// Publisher emits audit events on JetStream.
type Publisher struct {
	b       *bus.Bus
	service string
}

// NewPublisher returns a publisher for the named service (used as the actor
// of events that have no user behind them).
func NewPublisher(b *bus.Bus, service string) *Publisher { return &Publisher{b: b, service: service} }

// Publish fills in the version, id, time and actor when unset, validates the
// event and publishes it with its id as the dedup id, so a retried publish
// is stored once. A stable ID (e.g. derived from the triggering message)
// makes redelivered work emit the same event.
func (p *Publisher) Publish(ctx context.Context, e Event) error {
	if e.V == 0 {
		e.V = Version
	}
	if e.ID == "" {
		e.ID = uuid.NewString()
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	if e.Actor == "" {
		e.Actor = "service:" + p.service
	}
	if err := e.Validate(); err != nil {
		return err
	}
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return p.b.Publish(ctx, topology.SubjectAudit+"."+e.Action, data, "audit:"+e.ID)
}
