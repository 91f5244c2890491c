// Package protocol is the wire vocabulary of the Pulse upload protocol as
// PulseVault speaks it (mieweb/pulsevault PROTOCOL.md, protocol/schemas):
// the capabilities document, the Protocol-Version and Pulse-Client headers,
// the {"ok": false, "error"} bodies, the Upload-Metadata an upload carries
// and the upload ids derived from it. No I/O: functions/pulsevault and
// shared/pulse/server use it.
//
// One server speaks protocol 1 (Pulse 2.0) and 2 (Pulse 2.1+) at once:
// the capabilities carry what 2.0 needs (uploadUnit "merged", which it
// treats as mandatory) and what 2.1+ reads (protocolRevision, viewLinks).
package protocol

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Versions this server implements and accepts.
const (
	Version             = 2
	Revision            = "2.3" // view links (2.2), status (2.3); no webReady (2.4) yet
	MinSupportedVersion = 1
	MaxSupportedVersion = 2
)

// Headers.
const (
	HeaderProtocolVersion = "Protocol-Version"
	HeaderPulseClient     = "Pulse-Client"
)

// Kinds of artifact.
const (
	KindVideo     = "video"
	KindProject   = "project" // the beat manifest
	KindCaptions  = "captions"
	KindThumbnail = "thumbnail"
)

// Kinds lists the accepted kinds, in the spec's order.
var Kinds = []string{KindVideo, KindProject, KindCaptions, KindThumbnail}

// AllowedExtensions are the file extensions accepted per kind: what the
// app sends (<draftId>.mp4, .vtt, -beats.pulse, .jpg) and what the
// pipeline downstream can use as is.
var AllowedExtensions = map[string][]string{
	KindVideo:     {".mp4", ".mov"},
	KindProject:   {".pulse"},
	KindCaptions:  {".vtt"},
	KindThumbnail: {".jpg", ".jpeg"},
}

// ChecksumAlgorithms are the checksum algorithms verified, strongest first.
var ChecksumAlgorithms = []string{"sha256", "sha1", "md5"}

// Capabilities is the GET /capabilities body (capabilities.schema.json).
type Capabilities struct {
	ProtocolVersion     int                 `json:"protocolVersion"`
	ProtocolRevision    string              `json:"protocolRevision"`
	MinSupportedVersion int                 `json:"minSupportedVersion"`
	MaxSupportedVersion int                 `json:"maxSupportedVersion"`
	UploadUnit          string              `json:"uploadUnit"`
	Kinds               []string            `json:"kinds"`
	AllowedExtensions   map[string][]string `json:"allowedExtensions"`
	MaxUploadSize       int64               `json:"maxUploadSize"`
	Checksum            struct {
		Algorithms []string `json:"algorithms"`
	} `json:"checksum"`
	ViewLinks bool `json:"viewLinks"`
}

// NewCapabilities is the capabilities document for uploads up to maxUpload bytes.
func NewCapabilities(maxUpload int64) Capabilities {
	c := Capabilities{ProtocolVersion: Version, ProtocolRevision: Revision, MinSupportedVersion: MinSupportedVersion,
		MaxSupportedVersion: MaxSupportedVersion, UploadUnit: "merged", Kinds: Kinds, AllowedExtensions: AllowedExtensions,
		MaxUploadSize: maxUpload, ViewLinks: true}
	c.Checksum.Algorithms = ChecksumAlgorithms
	return c
}

// clientRe is the Pulse-Client header (pulse-client.schema.json), e.g.
// "Pulse/2.1.0 (45; ios); protocol=1-2".
var clientRe = regexp.MustCompile(`^[^;]+(;.*)?;\s*protocol=([0-9]{1,4})(-([0-9]{1,4}))?\s*$`)

// ClientRange returns the protocol range a Pulse-Client header declares;
// ok is false when the header is absent or not of that shape (then
// nothing changes, as the schema says).
func ClientRange(h string) (lo, hi int, ok bool) {
	m := clientRe.FindStringSubmatch(h)
	if m == nil {
		return 0, 0, false
	}
	lo, _ = strconv.Atoi(m[2])
	hi = lo
	if m[4] != "" {
		hi, _ = strconv.Atoi(m[4])
	}
	if hi < lo {
		return 0, 0, false
	}
	return lo, hi, true
}

// Supported reports whether a client speaking [lo, hi] can talk to us.
func Supported(lo, hi int) bool { return hi >= MinSupportedVersion && lo <= MaxSupportedVersion }

// UpgradeRequired is the 426 body.
type UpgradeRequired struct {
	OK                  bool   `json:"ok"`
	Error               string `json:"error"`
	MinSupportedVersion int    `json:"minSupportedVersion"`
	MaxSupportedVersion int    `json:"maxSupportedVersion"`
}

// CheckClient answers 426 and returns false when r's Pulse-Client header
// declares a protocol range that does not meet ours.
func CheckClient(w http.ResponseWriter, r *http.Request) bool {
	lo, hi, ok := ClientRange(r.Header.Get(HeaderPulseClient))
	if !ok || Supported(lo, hi) {
		return true
	}
	msg := "This server needs a newer version of Pulse. Update the app and try again."
	if lo > MaxSupportedVersion {
		msg = "This server hasn't been updated to work with this version of Pulse yet."
	}
	writeJSON(w, http.StatusUpgradeRequired, UpgradeRequired{Error: msg, MinSupportedVersion: MinSupportedVersion, MaxSupportedVersion: MaxSupportedVersion})
	return false
}

// ErrorBody is every refusal's body: the app shows error to the person.
type ErrorBody struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
}

// WriteError answers status with {"ok": false, "error": msg}. msg never
// quotes client input: it may be PHI.
func WriteError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, ErrorBody{Error: msg})
}

// WriteJSON answers status with v as JSON, never cached.
func WriteJSON(w http.ResponseWriter, status int, v any) { writeJSON(w, status, v) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// Refusal is a metadata or authorization problem with the status and the
// message to answer.
type Refusal struct {
	Status int
	Msg    string
}

func (r *Refusal) Error() string { return r.Msg }

func refuse(status int, format string, a ...any) *Refusal {
	return &Refusal{Status: status, Msg: fmt.Sprintf(format, a...)}
}

// Upload is what an upload's Upload-Metadata says, checked.
type Upload struct {
	ArtifactID  string // canonical (lower-case) UUID
	Kind        string
	Ext         string // lower-case, with the dot
	RelatedTo   string // "" or a canonical UUID
	ChecksumAlg string // "" or one of ChecksumAlgorithms
	ChecksumHex string // lower-case hex
	Name        string // display title, trimmed
	AppVersion  string
}

// MaxName bounds the display name and the app version, in bytes.
const MaxName = 512

// ParseUpload checks decoded metadata md of a creation. Every refusal is a
// 400 with a message naming the key, never its value.
func ParseUpload(md map[string]string) (Upload, error) {
	var u Upload
	for _, k := range []string{"artifactId", "videoid", "projectid"} {
		v, ok := md[k]
		if !ok {
			continue
		}
		id, err := CanonicalUUID(v)
		if err != nil {
			return u, refuse(http.StatusBadRequest, "%s must be a UUID", k)
		}
		if u.ArtifactID != "" && u.ArtifactID != id {
			return u, refuse(http.StatusBadRequest, "artifactId, videoid and projectid name different artifacts")
		}
		u.ArtifactID = id
	}
	if u.ArtifactID == "" {
		return u, refuse(http.StatusBadRequest, "Upload-Metadata needs artifactId (the UUID of the pairing link)")
	}
	u.Kind = md["kind"]
	if u.Kind == "" {
		u.Kind = KindVideo
	}
	allowed, ok := AllowedExtensions[u.Kind]
	if !ok {
		return u, refuse(http.StatusBadRequest, "kind must be one of %s", strings.Join(Kinds, ", "))
	}
	fn, ok := md["filename"]
	if !ok || fn == "" {
		return u, refuse(http.StatusBadRequest, "Upload-Metadata needs filename")
	}
	u.Ext = strings.ToLower(path.Ext(fn))
	if !slices.Contains(allowed, u.Ext) {
		return u, refuse(http.StatusBadRequest, "a %s upload's filename must end in %s", u.Kind, strings.Join(allowed, " or "))
	}
	if v, ok := md["relatedTo"]; ok && v != "" {
		id, err := CanonicalUUID(v)
		if err != nil {
			return u, refuse(http.StatusBadRequest, "relatedTo must be a UUID")
		}
		u.RelatedTo = id
	}
	if v, ok := md["checksum"]; ok && v != "" {
		alg, hexd, _ := strings.Cut(v, ":")
		alg, hexd = strings.ToLower(alg), strings.ToLower(hexd)
		size := map[string]int{"sha256": 64, "sha1": 40, "md5": 32}[alg]
		if size == 0 {
			return u, refuse(http.StatusBadRequest, "checksum must be <algorithm>:<hex>, algorithm one of %s", strings.Join(ChecksumAlgorithms, ", "))
		}
		if len(hexd) != size || strings.Trim(hexd, "0123456789abcdef") != "" {
			return u, refuse(http.StatusBadRequest, "checksum: a %s digest is %d hex digits", alg, size)
		}
		u.ChecksumAlg, u.ChecksumHex = alg, hexd
	}
	var err error
	if u.Name, err = text(md, "name"); err != nil {
		return u, err
	}
	if u.AppVersion, err = text(md, "appVersion"); err != nil {
		return u, err
	}
	return u, nil
}

// text is a display value: UTF-8 without control characters, trimmed and
// at most MaxName bytes.
func text(md map[string]string, k string) (string, error) {
	v := strings.TrimSpace(md[k])
	if !utf8.ValidString(v) || strings.IndexFunc(v, func(r rune) bool {
		return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || r == utf8.RuneError
	}) >= 0 {
		return "", refuse(http.StatusBadRequest, "%s must be UTF-8 text without control characters", k)
	}
	if len(v) > MaxName {
		return "", refuse(http.StatusBadRequest, "%s is over %d bytes", k, MaxName)
	}
	return v, nil
}

// CanonicalUUID parses a UUID in its 36-character form (any case) and
// returns it lower-case; other spellings (braces, urn:, no dashes) are refused.
func CanonicalUUID(s string) (string, error) {
	if len(s) != 36 {
		return "", fmt.Errorf("not a UUID")
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// UploadID is the upload id of an artifact: base64url("<kind>/<artifactId><ext>"),
// the one a 2.1+ client derives itself after a 409.
func UploadID(kind, artifact, ext string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + "/" + artifact + ext))
}

// ParseUploadID reverses UploadID; padding is tolerated. ok is false for
// anything not of that exact shape, so a path names at most one artifact.
func ParseUploadID(id string) (kind, artifact, ext string, ok bool) {
	if len(id) == 0 || len(id) > 128 {
		return "", "", "", false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(strings.TrimRight(id, "="))
	if err != nil {
		return "", "", "", false
	}
	kind, rest, found := strings.Cut(string(b), "/")
	allowed, known := AllowedExtensions[kind]
	if !found || !known || len(rest) < 36 {
		return "", "", "", false
	}
	artifact, ext = rest[:36], rest[36:]
	if c, err := CanonicalUUID(artifact); err != nil || c != artifact || !slices.Contains(allowed, ext) {
		return "", "", "", false
	}
	return kind, artifact, ext, true
}
