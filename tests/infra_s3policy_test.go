package tests

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// s3Allowed is, per function, the most its S3 user may be granted: resource → actions,
// read off the code (see infra/README.md "S3 credentials per function"). A policy may
// grant less, never more; events has no S3 user at all.
var s3Allowed = map[string]map[string][]string{
	// tusd's s3store on the staging bucket (ListBucket: a HEAD of a missing .part answers 404, not 403).
	"upload": {
		"arn:aws:s3:::pulse-uploads":   {"s3:ListBucket"},
		"arn:aws:s3:::pulse-uploads/*": {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"},
	},
	// The Pulse protocol: tusd and artifact-id claims on the staging bucket, meta.json read (and
	// written to withdraw), the web-ready MP4 and the poster served.
	"pulsevault": {
		"arn:aws:s3:::pulse-uploads":                   {"s3:ListBucket"},
		"arn:aws:s3:::pulse-uploads/*":                 {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"},
		"arn:aws:s3:::pulse-media":                     {"s3:ListBucket"},
		"arn:aws:s3:::pulse-media/videos/*/meta.json":  {"s3:GetObject", "s3:PutObject", "s3:PutObjectRetention"},
		"arn:aws:s3:::pulse-media/videos/*/original.*": {"s3:GetObject"},
		"arn:aws:s3:::pulse-media/videos/*/web.mp4":    {"s3:GetObject"},
		"arn:aws:s3:::pulse-media/videos/*/poster.jpg": {"s3:GetObject"},
	},
	// Reads and clears staged uploads; locks the original and a Pulse upload's companions;
	// creates and updates meta.json.
	"upload-finalize": {
		"arn:aws:s3:::pulse-uploads":                      {"s3:ListBucket"},
		"arn:aws:s3:::pulse-uploads/*":                    {"s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"},
		"arn:aws:s3:::pulse-media":                        {"s3:ListBucket"},
		"arn:aws:s3:::pulse-media/videos/*/original.*":    {"s3:GetObject", "s3:GetObjectRetention", "s3:PutObject", "s3:PutObjectRetention", "s3:AbortMultipartUpload"},
		"arn:aws:s3:::pulse-media/videos/*/meta.json":     {"s3:GetObject", "s3:PutObject", "s3:PutObjectRetention"},
		"arn:aws:s3:::pulse-media/videos/*/captions/*":    {"s3:GetObject", "s3:GetObjectRetention", "s3:PutObject", "s3:PutObjectRetention", "s3:AbortMultipartUpload"},
		"arn:aws:s3:::pulse-media/videos/*/thumbnail.jpg": {"s3:GetObject", "s3:GetObjectRetention", "s3:PutObject", "s3:PutObjectRetention", "s3:AbortMultipartUpload"},
		"arn:aws:s3:::pulse-media/videos/*/beats.json":    {"s3:GetObject", "s3:GetObjectRetention", "s3:PutObject", "s3:PutObjectRetention", "s3:AbortMultipartUpload"},
	},
	// Reads the original and meta.json, writes renditions, manifests, posters and meta.json.
	"transcode": {
		"arn:aws:s3:::pulse-media":                     {"s3:ListBucket"},
		"arn:aws:s3:::pulse-media/videos/*/original.*": {"s3:GetObject"},
		"arn:aws:s3:::pulse-media/videos/*/meta.json":  {"s3:GetObject", "s3:PutObject", "s3:PutObjectRetention"},
		"arn:aws:s3:::pulse-media/videos/*/hls/*":      {"s3:GetObject", "s3:PutObject", "s3:PutObjectRetention", "s3:AbortMultipartUpload"},
		"arn:aws:s3:::pulse-media/videos/*/dash/*":     {"s3:GetObject", "s3:PutObject", "s3:PutObjectRetention", "s3:AbortMultipartUpload"},
		"arn:aws:s3:::pulse-media/videos/*/poster.jpg": {"s3:GetObject", "s3:PutObject", "s3:PutObjectRetention"},
		"arn:aws:s3:::pulse-media/videos/*/thumb.jpg":  {"s3:PutObject", "s3:PutObjectRetention"},
		// A Pulse upload's staged companions, read; the web MP4, written.
		"arn:aws:s3:::pulse-media/videos/*/captions/*":    {"s3:GetObject"},
		"arn:aws:s3:::pulse-media/videos/*/thumbnail.jpg": {"s3:GetObject"},
		"arn:aws:s3:::pulse-media/videos/*/beats.json":    {"s3:GetObject"},
		"arn:aws:s3:::pulse-media/videos/*/web.mp4":       {"s3:PutObject", "s3:PutObjectRetention", "s3:AbortMultipartUpload"},
	},
	// Internet-facing, read-only: meta.json for the policy check.
	"sign-url": {
		"arn:aws:s3:::pulse-media":                    {"s3:ListBucket"},
		"arn:aws:s3:::pulse-media/videos/*/meta.json": {"s3:GetObject"},
	},
	// Internet-facing, read-only: what a playback token may reach (never the original or meta.json).
	"media": {
		"arn:aws:s3:::pulse-media":                     {"s3:ListBucket"},
		"arn:aws:s3:::pulse-media/videos/*/hls/*":      {"s3:GetObject"},
		"arn:aws:s3:::pulse-media/videos/*/dash/*":     {"s3:GetObject"},
		"arn:aws:s3:::pulse-media/videos/*/poster.jpg": {"s3:GetObject"},
	},
	// Internet-facing, read-only: the catalog lists videos/ and reads meta.json.
	"videos": {
		"arn:aws:s3:::pulse-media":                    {"s3:ListBucket"},
		"arn:aws:s3:::pulse-media/videos/*/meta.json": {"s3:GetObject"},
	},
	// Create-only writes with retention, and reading one back after a 412.
	"audit-append": {
		"arn:aws:s3:::pulse-audit/*": {"s3:GetObject", "s3:PutObject", "s3:PutObjectRetention"},
	},
}

// iamPolicy is the subset of the IAM policy language the per-function policies use.
type iamPolicy struct {
	Version   string
	Statement []struct {
		Sid       string
		Effect    string
		Action    []string
		Resource  []string
		Condition map[string]any
	}
}

// Regression (issue 15, finding 10): every function holds an S3 credential of its own,
// whose policy in infra/policies grants no more than that function's code needs.
func TestInfraPerFunctionS3Policies(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(infraDir(t), "policies")
	seen := map[string]bool{}
	for fn, f := range readStack(t).Functions {
		var s3 []string
		for _, s := range f.Secrets {
			if strings.HasPrefix(s, "pulsevault-s3-") {
				s3 = append(s3, s)
			}
		}
		allowed, uses := s3Allowed[fn]
		if !uses {
			if len(s3) > 0 {
				t.Errorf("%s lists S3 secrets %v but has no S3 user", fn, s3)
			}
			if _, err := os.Stat(filepath.Join(dir, fn+".json")); err == nil {
				t.Errorf("%s has no S3 user but a policy %s.json", fn, fn)
			}
			continue
		}
		seen[fn+".json"] = true
		if want := []string{"pulsevault-s3-" + fn + "-access-key", "pulsevault-s3-" + fn + "-secret-key"}; !slices.Equal(s3, want) {
			t.Errorf("%s: S3 secrets %v, want its own %v", fn, s3, want)
		}
		b, err := os.ReadFile(filepath.Join(dir, fn+".json"))
		if err != nil {
			t.Errorf("%s: no policy: %v", fn, err)
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var p iamPolicy
		if err := dec.Decode(&p); err != nil {
			t.Errorf("%s.json: %v", fn, err)
			continue
		}
		if p.Version != "2012-10-17" || len(p.Statement) == 0 {
			t.Errorf("%s.json: version %q, %d statements", fn, p.Version, len(p.Statement))
		}
		granted := 0
		for _, st := range p.Statement {
			if st.Effect != "Allow" || st.Condition != nil || len(st.Action) == 0 || len(st.Resource) == 0 {
				t.Errorf("%s.json %s: want Allow statements with actions and resources, no conditions", fn, st.Sid)
				continue
			}
			for _, r := range st.Resource {
				for _, a := range st.Action {
					if !slices.Contains(allowed[r], a) {
						t.Errorf("%s.json %s grants %s on %s: more than %s needs", fn, st.Sid, a, r, fn)
					}
					granted++
				}
			}
		}
		if granted == 0 {
			t.Errorf("%s.json grants nothing", fn)
		}
	}
	for fn := range s3Allowed {
		if !seen[fn+".json"] {
			t.Errorf("%s is not in stack.yml, or lists no S3 secrets", fn)
		}
	}
	// The rest of infra/policies: the bootstrap user's and the auditors'.
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, p := range files {
		if name := filepath.Base(p); !seen[name] && name != "bootstrap.json" && name != "pulse-audit-readonly.json" {
			t.Errorf("infra/policies/%s belongs to no function", name)
		}
	}
}
