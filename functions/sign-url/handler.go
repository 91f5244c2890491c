// Package signurl is the sign-url function: returns a short-lived, path-scoped playback URL for an authenticated caller.
//
// It is a placeholder until issue 6 lands: every request gets 501 with a
// JSON body saying so.
package signurl

import (
	"net/http"

	"github.com/mieweb/pulsevault/shared/fnrun"
)

// Name is the function's name in stack.yml.
const Name = "sign-url"

// Handle answers every request with 501 Not Implemented.
func Handle(w http.ResponseWriter, r *http.Request) {
	fnrun.NotImplemented(w, Name, "the sign-url function lands with issue 6")
}
