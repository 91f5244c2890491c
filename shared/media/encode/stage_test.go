package encode_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/faas/bootstrap"
	"github.com/mieweb/pulsevault/shared/media/encode"
	"github.com/mieweb/pulsevault/shared/media/ladder"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/platform/logging"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
	"github.com/mieweb/pulsevault/shared/testutil/testenv"
)

// phi is client metadata that must never reach a log line or an object key.
const phi = "Jane-Doe-Gait-Test"

// rig is a real store + NATS with a worker over them.
type rig struct {
	t     *testing.T
	cfg   config.Config
	st    *storage.Store
	bus   *bus.Bus
	meta  *meta.Store
	w     *encode.Worker
	logs  *testenv.Buffer
	proxy string // base URL serving the media bucket through presigned GETs
}

// auditEvents reads every event stored in PULSE_AUDIT.
func (r *rig) auditEvents() []event.Event {
	r.t.Helper()
	ctx := context.Background()
	s, err := r.bus.JetStream().Stream(ctx, "PULSE_AUDIT")
	if err != nil {
		r.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []event.Event
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		var e event.Event
		if err := json.Unmarshal(m.Data, &e); err != nil {
			r.t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func newRig(t *testing.T) *rig {
	t.Helper()
	env := testenv.Start(t)
	cfg := env.Config
	st, err := storage.FromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.Connect(cfg.NATSURL, "transcode-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ctx := context.Background()
	if _, err := bootstrap.Run(ctx, cfg, st, b, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	tc, err := encode.LoadConfig(func(k string) string {
		return map[string]string{"TRANSCODE_TMPDIR": t.TempDir(), "TRANSCODE_PROGRESS_INTERVAL": "100ms"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	logs := &testenv.Buffer{}
	r := &rig{t: t, cfg: cfg, st: st, bus: b, meta: meta.NewStore(st, cfg.MediaBucket).Retain(cfg.MediaRetentionDays), logs: logs}
	r.w = &encode.Worker{Store: st, Meta: r.meta, Audit: event.NewPublisher(b, "transcode"),
		Bucket: cfg.MediaBucket, RetentionDays: cfg.MediaRetentionDays, Config: tc, Log: logging.New(logs, "debug", "fn/transcode")}
	r.proxy = testenv.ServeBucket(t, st, cfg.MediaBucket)
	return r
}

// probeFile is the part of ffprobe's answer the tests use.
type probeFile struct {
	Streams []struct {
		CodecType    string `json:"codec_type"`
		Width        int    `json:"width"`
		Height       int    `json:"height"`
		AvgFrameRate string `json:"avg_frame_rate"`
		Channels     int    `json:"channels"`
		Tags         struct {
			Rotate string `json:"rotate"`
		} `json:"tags"`
		SideData []struct {
			Rotation int `json:"rotation"`
		} `json:"side_data_list"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

func ffprobe(t *testing.T, url string) probeFile {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", url).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", url, err)
	}
	var p probeFile
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p probeFile) duration() float64 {
	d, _ := strconv.ParseFloat(p.Format.Duration, 64)
	return d
}

// metaProbe turns ffprobe's view of a clip into meta.Probe, as
// upload-finalize records it.
func metaProbe(p probeFile) meta.Probe {
	var m meta.Probe
	m.Duration = p.duration()
	m.Format = "mov,mp4,m4a,3gp,3g2,mj2"
	for _, s := range p.Streams {
		switch s.CodecType {
		case "video":
			m.Width, m.Height, m.VideoCodec = s.Width, s.Height, "h264"
			rot, _ := strconv.Atoi(s.Tags.Rotate)
			for _, sd := range s.SideData {
				if sd.Rotation != 0 {
					rot = -sd.Rotation
				}
			}
			m.Rotation = ((rot % 360) + 360) % 360
			if m.Rotation == 90 || m.Rotation == 270 {
				m.Width, m.Height = m.Height, m.Width
			}
			if n, d, ok := strings.Cut(s.AvgFrameRate, "/"); ok {
				nf, _ := strconv.ParseFloat(n, 64)
				df, _ := strconv.ParseFloat(d, 64)
				if df > 0 {
					m.FPS = nf / df
				}
			}
		case "audio":
			m.HasAudio, m.AudioCodec, m.AudioChannels = true, "aac", s.Channels
		}
	}
	return m
}

// stage puts a generated clip in the media bucket as a finalized video
// (original with retention, meta.json with the planned renditions) and
// returns its id and meta.json.
func (r *rig) stage(o testclip.Options, mangle func([]byte) []byte) (string, *meta.Video) {
	r.t.Helper()
	ctx := context.Background()
	path := filepath.Join(r.t.TempDir(), "clip.mp4")
	if err := testclip.Make(ctx, path, o); err != nil {
		r.t.Fatal(err)
	}
	pr := ffprobe(r.t, path)
	b, err := os.ReadFile(path)
	if err != nil {
		r.t.Fatal(err)
	}
	if mangle != nil {
		b = mangle(b)
	}
	id := uuid.NewString()
	key := "videos/" + id + "/original.mp4"
	ret := storage.Compliance(r.cfg.MediaRetentionDays)
	put, err := r.st.Put(ctx, r.cfg.MediaBucket, key, bytes.NewReader(b), int64(len(b)),
		storage.PutOptions{ContentType: "video/mp4", Retention: &ret})
	if err != nil {
		r.t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	p := metaProbe(pr)
	v := &meta.Video{ID: id, Status: meta.Processing, Uploader: "test-user", UploadID: "up-" + id,
		Client: map[string]string{"filename": phi + ".mp4"},
		Original: &meta.Original{Key: key, Size: int64(len(b)), ContentType: "video/mp4", RetainUntil: ret.Until,
			VersionID: put.VersionID, SHA256: hex.EncodeToString(sum[:])},
		Probe: &p, Renditions: ladder.Plan(p)}
	if err := r.meta.Create(ctx, v); err != nil {
		r.t.Fatal(err)
	}
	return id, v
}

func (r *rig) get(id string) *meta.Video {
	r.t.Helper()
	v, _, err := r.meta.Get(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return v
}
