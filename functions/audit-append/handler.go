// Package auditappend is the audit-append function: appends audit events to the hash-chained, locked audit log.
//
// It is a placeholder until issue 7 lands: every request gets 501 with a
// JSON body saying so.
package auditappend

import (
	"net/http"

	"github.com/mieweb/pulsevault/shared/fnrun"
)

// Name is the function's name in stack.yml.
const Name = "audit-append"

// Handle answers every request with 501 Not Implemented.
func Handle(w http.ResponseWriter, r *http.Request) {
	fnrun.NotImplemented(w, Name, "the audit-append function lands with issue 7")
}
