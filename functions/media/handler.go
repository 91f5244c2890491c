// Package media is the media function: checks a playback token and streams the object's bytes with ranges.
//
// It is a placeholder until issue 6 lands: every request gets 501 with a
// JSON body saying so.
package media

import (
	"net/http"

	"github.com/mieweb/pulsevault/shared/fnrun"
)

// Name is the function's name in stack.yml.
const Name = "media"

// Handle answers every request with 501 Not Implemented.
func Handle(w http.ResponseWriter, r *http.Request) {
	fnrun.NotImplemented(w, Name, "the media function lands with issue 6")
}
