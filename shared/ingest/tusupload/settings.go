package tusupload

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/mieweb/pulsevault/shared/platform/settings"
)

// Settings lists the upload function's own environment variables (the store
// and JWT settings come from shared/platform/config).
var Settings = []settings.Setting{
	{Env: "UPLOAD_MAX_BYTES", Default: "4294967296", Usage: "largest upload accepted, in bytes (1 B–5 TiB; default 4 GiB); larger ones get 413 at creation"},
	{Env: "UPLOAD_BASE_PATH", Default: "/function/upload/", Usage: "public path of the tus endpoint, used in Location headers; a request's X-Forwarded-Prefix overrides it"},
	{Env: "UPLOAD_CORS_ORIGINS", Default: "http://127.0.0.1:4000,http://localhost:4000", Usage: "comma-separated browser origins (Vitals) allowed to upload; none allows no browser origin"},
	{Env: "UPLOAD_EXPIRY", Default: "24h", Usage: "incomplete uploads older than this are removed by upload-finalize's reconciler; announced as Upload-Expires (1m–720h)"},
	{Env: "UPLOAD_IDLE_TIMEOUT", Default: "60s", Usage: "a PATCH whose body sends nothing for this long is ended and its bytes so far kept, so a stalled client frees the upload for its resume (1s–10m)"},
}

// Limits is the upload function's validated settings.
type Limits struct {
	MaxBytes    int64
	BasePath    string
	CORSOrigins []string
	Expiry      time.Duration
	IdleTimeout time.Duration // tusd's NetworkTimeout
}

// maxObject is S3's largest object.
const maxObject = 5 << 40

// LoadSettings reads Settings through getenv; an error is one line naming
// the variable and what it accepts.
func LoadSettings(getenv func(string) string) (Limits, error) {
	r := settings.New(getenv, Settings)
	l := Limits{MaxBytes: r.Bytes("UPLOAD_MAX_BYTES", 1, maxObject)}
	bp := r.String("UPLOAD_BASE_PATH")
	if !strings.HasPrefix(bp, "/") || strings.Contains(bp, "..") || strings.ContainsAny(bp, "?#") {
		r.Fail("UPLOAD_BASE_PATH", "must be an absolute URL path such as /function/upload/")
	}
	l.BasePath = strings.TrimSuffix(bp, "/") + "/"
	if v := r.String("UPLOAD_CORS_ORIGINS"); v != "none" {
		for o := range strings.SplitSeq(v, ",") {
			o = strings.TrimSpace(o)
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
				r.Fail("UPLOAD_CORS_ORIGINS", fmt.Sprintf("entry %q is not an origin; must be origins such as https://vitals.example.org, comma-separated, or none", o))
				break
			}
			l.CORSOrigins = append(l.CORSOrigins, u.Scheme+"://"+u.Host)
		}
	}
	l.Expiry = r.Duration("UPLOAD_EXPIRY", time.Minute, 720*time.Hour)
	l.IdleTimeout = r.Duration("UPLOAD_IDLE_TIMEOUT", time.Second, 10*time.Minute)
	return l, r.Err()
}
