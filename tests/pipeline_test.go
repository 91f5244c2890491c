package tests

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openfaas/faas-provider/types"

	"github.com/mieweb/pulsevault/shared/playback/token"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
	"github.com/mieweb/pulsevault/shared/topology"
)

// The whole pipeline through the real binary: `pulsevault upload --wait` of a phone-like clip
// → upload (tusd) → bucket event → connector → upload-finalize → transcode jobs → connector →
// transcode (grouped fan-out: 240p alone, 360p+480p from one decode) → videos API reports it
// playable, and its master playlist is in the store.
func TestPipelineUploadToPlayable(t *testing.T) {
	s := startIngestStack(t)
	s.deployPipeline()

	clip := filepath.Join(t.TempDir(), "clip.mp4")
	if err := testclip.Make(context.Background(), clip, testclip.Options{Width: 480, Height: 854, Seconds: 3}); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := s.upload(s.gateway+"/function/upload/", s.token, filepath.Join(t.TempDir(), "state.json"),
		"--wait", "--wait-timeout", "3m")(clip)
	if err != nil {
		t.Fatalf("pulsevault upload --wait: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	m := ingestVideoRe.FindStringSubmatch(out)
	if m == nil || !(strings.Contains(out, "  ready") || strings.Contains(out, "  complete")) {
		t.Fatalf("upload --wait did not report the video playable:\n%s", out)
	}
	if _, err := s.st.Stat(context.Background(), s.env.Config.MediaBucket, "videos/"+m[1]+"/hls/master.m3u8"); err != nil {
		t.Fatalf("master playlist of a playable video: %v", err)
	}
	t.Logf("upload --wait:\n%s", out)
}

// deployPipeline completes an ingest stack to the whole pipeline: media
// keys, transcode on the job stream, the videos API, and the connector that
// delivers bucket events and jobs. It returns the media keyring.
func (s *ingestStack) deployPipeline() *token.Keyring {
	s.t.Helper()
	keys, err := token.GenerateKeyLine("k1")
	if err != nil {
		s.t.Fatal(err)
	}
	ring, err := token.ParseKeys([]byte(keys))
	if err != nil {
		s.t.Fatal(err)
	}
	s.system(http.MethodPost, "/system/secrets", types.Secret{Name: token.SecretName, Value: keys}, http.StatusCreated)
	jobs := map[string]string{"topic": topology.SubjectTranscodeJobs}
	s.system(http.MethodPost, "/system/functions", types.FunctionDeployment{Service: "transcode", Image: "pulsevault-transcode:dev",
		Annotations: &jobs, EnvVars: map[string]string{"exec_timeout": "5m", "write_timeout": "5m"}}, http.StatusAccepted)
	s.system(http.MethodPost, "/system/functions", types.FunctionDeployment{Service: "videos", Image: "pulsevault-videos:dev",
		Secrets: []string{"pulsevault-jwt-secret", token.SecretName}}, http.StatusAccepted)
	s.startConnector()
	return ring
}
