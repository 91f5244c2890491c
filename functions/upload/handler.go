// Package upload is the upload function: the tus resumable upload endpoint (tusd v2 writing to the uploads bucket).
//
// It is a placeholder until issue 4 lands: every request gets 501 with a
// JSON body saying so.
package upload

import (
	"net/http"

	"github.com/mieweb/pulsevault/shared/fnrun"
)

// Name is the function's name in stack.yml.
const Name = "upload"

// Handle answers every request with 501 Not Implemented.
func Handle(w http.ResponseWriter, r *http.Request) {
	fnrun.NotImplemented(w, Name, "the upload function lands with issue 4")
}
