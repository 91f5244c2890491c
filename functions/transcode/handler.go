// Package transcode is the transcode function: one rendition of one video, FFmpeg to CMAF HLS and DASH.
//
// It is a placeholder until issue 5 lands: every request gets 501 with a
// JSON body saying so.
package transcode

import (
	"net/http"

	"github.com/mieweb/pulsevault/shared/fnrun"
)

// Name is the function's name in stack.yml.
const Name = "transcode"

// Handle answers every request with 501 Not Implemented.
func Handle(w http.ResponseWriter, r *http.Request) {
	fnrun.NotImplemented(w, Name, "the transcode function lands with issue 5")
}
