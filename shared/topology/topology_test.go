package topology

import (
	"go/scanner"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestKeys(t *testing.T) {
	const id = "3f0c8b1e-0000-4000-8000-000000000000"
	for got, want := range map[string]string{
		VideoPrefix(id):                          "videos/" + id + "/",
		MetaKey(id):                              "videos/" + id + "/meta.json",
		OriginalKey(id, "mp4"):                   "videos/" + id + "/original.mp4",
		VideoKey(id, MasterFile):                 "videos/" + id + "/hls/master.m3u8",
		VideoKey(id, MPDFile):                    "videos/" + id + "/dash/manifest.mpd",
		VideoKey(id, PosterFile):                 "videos/" + id + "/poster.jpg",
		RenditionKey(id, "240p", InitFile):       "videos/" + id + "/hls/240p/init.mp4",
		RenditionKey(id, "240p", SegmentFile(7)): "videos/" + id + "/hls/240p/seg_7.m4s",
		InfoKey("abc"):                           "abc.info",
		PartKey("abc"):                           "abc.part",
		StatusSubject(id):                        "pulse.status." + id,
		DeadLetter("transcode"):                  "pulse.dlq.transcode",
		DeadLetterAudit:                          "pulse.dlq.audit-append",
		DeadLetterAsync:                          "pulse.dlq.async",
		AsyncSubject("echo"):                     "pulse.async.echo",
		LeaseSubject("B", "k"):                   "pulse.lease.B.k",
		SubjectTranscodeJobs:                     "pulse.jobs.transcode",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	for key, want := range map[string]string{
		MetaKey(id):                       id,
		"videos/a/b/meta.json":            "",
		"videos/" + id + "/hls/meta.json": "",
		"other/" + id + "/meta.json":      "",
		"videos/" + id + "/meta.json.bak": "",
	} {
		got, ok := MetaVideoID(key)
		if got != want || ok != (want != "") {
			t.Errorf("MetaVideoID(%q) = %q, %v", key, got, ok)
		}
	}
}

// spelled matches string literals that name a stream, subject, KV bucket,
// header or object key this package declares.
var spelled = regexp.MustCompile(`^"(PULSE_|pulse[.-]|AUDIT_(CHAIN|IDS)"|videos/|hls/|dash/|keys/|X-Nats-|X-Pulsevault|Nats-|X-Topic"|X-Connector"|X-Schedule"|(poster|thumb)\.jpg"|meta\.json"|original\.("|[a-z0-9]{1,4}")|init\.mp4"|index\.m3u8"|seg_|\.info"|\.part")`)

// TestNothingElseSpellsTheTopology scans the production Go files of the
// module (tests may spell keys out: they check the layout) for a string
// literal that should have been one of this package's names.
func TestNothingElseSpellsTheTopology(t *testing.T) {
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			switch rel {
			case "shared/topology", "infra", "vitals", "bin", ".git":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fset := token.NewFileSet()
		var s scanner.Scanner
		s.Init(fset.AddFile(path, -1, len(src)), src, nil, 0)
		for {
			pos, tok, lit := s.Scan()
			if tok == token.EOF {
				break
			}
			if tok == token.STRING && spelled.MatchString(lit) {
				t.Errorf("%s: %s spells a name of shared/topology", fset.Position(pos), lit)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCompanionKeys(t *testing.T) {
	id := "0f8fad5b-d9cb-469f-a165-70867728950e"
	if k, ok := CaptionsKey(id, "en"); !ok || k != "videos/"+id+"/captions/en.vtt" {
		t.Fatal(k, ok)
	}
	for _, good := range []string{"und", "en", "pt-BR", "zh-Hant-TW", "fil"} {
		if !ValidLang(good) {
			t.Errorf("%q refused", good)
		}
	}
	for _, bad := range []string{"", "EN", "e", "english", "en/../x", "en_US", "en-", "en-abcdefghi", "../und", "en\n"} {
		if _, ok := CaptionsKey(id, bad); ok {
			t.Errorf("%q accepted as a language", bad)
		}
	}
	if ThumbnailKey(id) != "videos/"+id+"/thumbnail.jpg" || BeatsKey(id) != "videos/"+id+"/beats.json" || WebMP4Key(id) != "videos/"+id+"/web.mp4" {
		t.Fatal(ThumbnailKey(id), BeatsKey(id), WebMP4Key(id))
	}
	if SubtitlesFile("en") != "hls/subs/en.vtt" || SubtitlesPlaylistFile("en") != "hls/subs/en.m3u8" {
		t.Fatal(SubtitlesFile("en"), SubtitlesPlaylistFile("en"))
	}
}
