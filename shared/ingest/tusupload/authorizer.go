package tusupload

import (
	"net/http"

	"github.com/tus/tusd/v2/pkg/handler"
)

// Authorizer is a second way in, beside bearer JWTs: it decides who may
// create an upload and which staged upload a request names. The Pulse
// capability tokens (shared/pulse/server) are one. tusd, the store, the
// locks and every rule of this package stay the same.
type Authorizer interface {
	// Create authorizes a creation (tusd's pre-create hook, so before any
	// byte is accepted): the object id to stage the upload under ("" keeps
	// tusd's random one; it must contain no '+' or '/') and the subject
	// that owns it. An error is answered as tusd answers a handler.Error.
	Create(ev handler.HookEvent) (object, subject string, err error)
	// Locate authorizes a request for an existing upload whose path after
	// the base path is id: the object id it names and the subject that
	// must own it. When ok is false it has answered the request itself.
	// The upload's .info must then carry that subject and that object id,
	// or Refuse answers 404; tusd is handed the .info's own upload id.
	Locate(w http.ResponseWriter, r *http.Request, id string) (object, subject string, ok bool)
	// Refuse answers a located request that names no upload of the
	// subject (404) or whose state is unreadable (503), in the
	// authorizer's error shape.
	Refuse(w http.ResponseWriter, r *http.Request, status int)
	// Patch sees an authorized PATCH before tusd reads its body, and may
	// wrap r.Body (to verify a checksum as the bytes pass).
	Patch(r *http.Request, u Staged)
}

// Staged is what the handler knows of an upload a PATCH writes to.
type Staged struct {
	ID       string            // tusd's upload id
	Object   string            // its object id in the uploads bucket
	Size     int64             // declared length
	MetaData map[string]string // the client's metadata
}
