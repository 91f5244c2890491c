package tusupload

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/mieweb/pulsevault/shared/ingest/staging"
	"github.com/mieweb/pulsevault/shared/platform/settings"
)

// Settings lists the upload function's own environment variables (the store
// and JWT settings come from shared/platform/config; UPLOAD_MAX_BYTES and
// UPLOAD_EXPIRY are shared with upload-finalize, in shared/ingest/staging).
var Settings = settings.Table{
	staging.MaxBytesVar,
	{Env: "UPLOAD_BASE_PATH", Default: "/function/upload/", Usage: "public path of the tus endpoint, used in Location headers; a request's X-Forwarded-Prefix overrides it", Check: basePath},
	{Env: "UPLOAD_CORS_ORIGINS", Default: "http://127.0.0.1:4000,http://localhost:4000", Usage: "comma-separated browser origins (Vitals) allowed to upload; none allows no browser origin", Check: origins},
	staging.ExpiryVar,
	{Env: "UPLOAD_IDLE_TIMEOUT", Default: "60s", Usage: "a PATCH whose body sends nothing for this long is ended and its bytes so far kept, so a stalled client frees the upload for its resume (1s–10m)", Check: settings.Duration(time.Second, 10*time.Minute)},
}

// Limits is the upload function's validated settings.
type Limits struct {
	MaxBytes    int64
	BasePath    string
	CORSOrigins []string
	Expiry      time.Duration
	IdleTimeout time.Duration // tusd's NetworkTimeout
}

func basePath(bp string) error {
	if !strings.HasPrefix(bp, "/") || strings.Contains(bp, "..") || strings.ContainsAny(bp, "?#") {
		return fmt.Errorf("must be an absolute URL path such as /function/upload/")
	}
	return nil
}

func origins(v string) error {
	if v == "none" {
		return nil
	}
	for o := range strings.SplitSeq(v, ",") {
		if _, err := origin(o); err != nil {
			return err
		}
	}
	return nil
}

// origin is o as scheme://host, or why it is not a browser origin.
func origin(o string) (string, error) {
	o = strings.TrimSpace(o)
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return "", fmt.Errorf("entry %q is not an origin; must be origins such as https://vitals.example.org, comma-separated, or none", o)
	}
	return u.Scheme + "://" + u.Host, nil
}

// LoadSettings reads Settings through getenv; an error is one line naming
// the variable and what it accepts.
func LoadSettings(getenv func(string) string) (Limits, error) {
	vs, err := settings.FromEnv(Settings, getenv)
	if err != nil {
		return Limits{}, err
	}
	l := Limits{
		MaxBytes:    vs.Int64("UPLOAD_MAX_BYTES"),
		BasePath:    strings.TrimSuffix(vs.String("UPLOAD_BASE_PATH"), "/") + "/",
		Expiry:      vs.Duration("UPLOAD_EXPIRY"),
		IdleTimeout: vs.Duration("UPLOAD_IDLE_TIMEOUT"),
	}
	if v := vs.String("UPLOAD_CORS_ORIGINS"); v != "none" {
		for _, o := range strings.Split(v, ",") {
			u, _ := origin(o) // checked
			l.CORSOrigins = append(l.CORSOrigins, u)
		}
	}
	return l, nil
}
