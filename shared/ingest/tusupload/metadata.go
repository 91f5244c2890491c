package tusupload

import (
	"net/http"
	"slices"
	"strings"

	"github.com/tus/tusd/v2/pkg/handler"
)

// MetadataKeys are the Upload-Metadata keys accepted at creation: those our
// clients send. Vitals (tus-js-client) and `pulsevault upload` send
// filename and filetype; the Pulse app (DESIGN.md §11, protocol
// generations B–D) adds name, artifactId, videoid, kind, relatedTo,
// checksum, appVersion and projectid. Any other key is refused.
var MetadataKeys = []string{"filename", "filetype", "name", "artifactId", "videoid", "kind", "relatedTo", "checksum", "appVersion", "projectid"}

// Bounds of the client's metadata, which ends up in the upload's .info and
// in its video's meta.json (read back with a 1 MiB limit, by every
// listing of the feed).
const (
	MaxMetadataValue  = 1024    // bytes of one decoded value
	MaxMetadataBytes  = 4096    // bytes of all keys and decoded values together
	MaxMetadataHeader = 8 << 10 // bytes of the Upload-Metadata header as sent (base64)
)

// checkMetadata refuses client metadata beyond the bounds, with a 400
// naming the bound (never the client's text: a value is often PHI).
func checkMetadata(h http.Header, md handler.MetaData) error {
	if len(h.Get("Upload-Metadata")) > MaxMetadataHeader {
		return metadataError("the Upload-Metadata header is over 8192 bytes")
	}
	total := 0
	for k, v := range md {
		if !slices.Contains(MetadataKeys, k) {
			return metadataError("a metadata key is not accepted; accepted keys: " + strings.Join(MetadataKeys, ", "))
		}
		if len(v) > MaxMetadataValue {
			return metadataError("the metadata value of " + k + " is over 1024 bytes")
		}
		total += len(k) + len(v)
	}
	if total > MaxMetadataBytes {
		return metadataError("the metadata is over 4096 bytes in all")
	}
	return nil
}

func metadataError(msg string) error {
	return handler.NewError("ERR_INVALID_METADATA", msg, http.StatusBadRequest)
}
