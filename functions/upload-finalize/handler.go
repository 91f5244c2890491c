// Package uploadfinalize is the upload-finalize function: turns a completed upload into a locked original, meta.json and transcode jobs.
//
// It is a placeholder until issue 4 lands: every request gets 501 with a
// JSON body saying so.
package uploadfinalize

import (
	"net/http"

	"github.com/mieweb/pulsevault/shared/fnrun"
)

// Name is the function's name in stack.yml.
const Name = "upload-finalize"

// Handle answers every request with 501 Not Implemented.
func Handle(w http.ResponseWriter, r *http.Request) {
	fnrun.NotImplemented(w, Name, "the upload-finalize function lands with issue 4")
}
