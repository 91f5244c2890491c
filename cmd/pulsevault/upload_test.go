package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

// The upload command's environment-backed flags go through the settings
// reader: validated, in either flag form, before or after the files.
func TestUploadFlags(t *testing.T) {
	t.Setenv("PULSEVAULT_TOKEN", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"a.mp4", "--endpoint", "ftp://h/x", "--token", "t"}, "PULSEVAULT_UPLOAD_URL (--endpoint)"},
		{[]string{"--endpoint=http://127.0.0.1:1/u/", "a.mp4", "--videos=x"}, "PULSEVAULT_VIDEOS_URL (--videos)"},
		{[]string{"a.mp4", "--endpoint", "http://127.0.0.1:1/u/"}, "needs a token"},
		{[]string{"--token", "t"}, "at least one FILE"},
	} {
		err := runUpload(context.Background(), tc.args, io.Discard, io.Discard)
		if err == nil || !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want a usage error with %q", tc.args, err, tc.want)
		}
	}
}
