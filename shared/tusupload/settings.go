package tusupload

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Setting is one environment variable of the upload function.
type Setting struct{ Env, Default, Usage string }

// Settings lists the upload function's own environment variables (the store
// and JWT settings come from shared/config).
var Settings = []Setting{
	{"UPLOAD_MAX_BYTES", "4294967296", "largest upload accepted, in bytes (1 B–5 TiB; default 4 GiB); larger ones get 413 at creation"},
	{"UPLOAD_BASE_PATH", "/function/upload/", "public path of the tus endpoint, used in Location headers; a request's X-Forwarded-Prefix overrides it"},
	{"UPLOAD_CORS_ORIGINS", "http://127.0.0.1:4000,http://localhost:4000", "comma-separated browser origins (Vitals) allowed to upload; none allows no browser origin"},
	{"UPLOAD_EXPIRY", "24h", "incomplete uploads older than this are removed by upload-finalize's reconciler; announced as Upload-Expires (1m–720h)"},
}

// Limits is the upload function's validated settings.
type Limits struct {
	MaxBytes    int64
	BasePath    string
	CORSOrigins []string
	Expiry      time.Duration
}

// maxObject is S3's largest object.
const maxObject = 5 << 40

// LoadSettings reads Settings through getenv; an error is one line naming
// the variable and what it accepts.
func LoadSettings(getenv func(string) string) (Limits, error) {
	get := func(name string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		for _, s := range Settings {
			if s.Env == name {
				return s.Default
			}
		}
		return ""
	}
	var l Limits
	n, err := strconv.ParseInt(get("UPLOAD_MAX_BYTES"), 10, 64)
	if err != nil || n < 1 || n > maxObject {
		return l, fmt.Errorf("invalid UPLOAD_MAX_BYTES %q: must be a whole number of bytes from 1 to %d", get("UPLOAD_MAX_BYTES"), int64(maxObject))
	}
	l.MaxBytes = n
	bp := get("UPLOAD_BASE_PATH")
	if !strings.HasPrefix(bp, "/") || strings.Contains(bp, "..") || strings.ContainsAny(bp, "?#") {
		return l, fmt.Errorf("invalid UPLOAD_BASE_PATH %q: must be an absolute URL path such as /function/upload/", bp)
	}
	l.BasePath = strings.TrimSuffix(bp, "/") + "/"
	if v := get("UPLOAD_CORS_ORIGINS"); v != "none" {
		for _, o := range strings.Split(v, ",") {
			o = strings.TrimSpace(o)
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
				return l, fmt.Errorf("invalid UPLOAD_CORS_ORIGINS entry %q: must be origins such as https://vitals.example.org, comma-separated, or none", o)
			}
			l.CORSOrigins = append(l.CORSOrigins, u.Scheme+"://"+u.Host)
		}
	}
	d, err := time.ParseDuration(get("UPLOAD_EXPIRY"))
	if err != nil || d < time.Minute || d > 720*time.Hour {
		return l, fmt.Errorf("invalid UPLOAD_EXPIRY %q: must be a duration from 1m to 720h, such as 24h", get("UPLOAD_EXPIRY"))
	}
	l.Expiry = d
	return l, nil
}
