package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/mieweb/pulsevault/shared/ingest/tusclient"
	"github.com/mieweb/pulsevault/shared/ingest/videoid"
	"github.com/mieweb/pulsevault/shared/platform/settings"
)

const uploadUsage = `Usage: pulsevault upload FILE... [flags]

Uploads each file with the tus resumable protocol and prints its video id.
An interrupted upload resumes where it stopped when the same command runs again.

Flags (each also read from the environment variable shown):
  --endpoint URL     tus endpoint (PULSEVAULT_UPLOAD_URL; default http://127.0.0.1:8080/function/upload/)
  --token T          bearer token (better PULSEVAULT_TOKEN: any local user can read a command line);
                     without one, the login of 'pulsevault login' is used
  --state FILE       where unfinished uploads are remembered (default $XDG_STATE_HOME/pulsevault/uploads.json)
  --chunk-size N     bytes per PATCH request (default 33554432)
  --no-progress      no progress bar
  --wait             follow each video's status until it is playable (ready), rejected or failed
  --videos URL       the videos API used by --wait (default: PULSEVAULT_VIDEOS_URL, else
                     "../videos/" next to the upload endpoint)
  --wait-timeout D   give up waiting after D (default 10m)
`

// uploadSettings are the upload command's flags that the environment
// also sets (the token is better given there: any local user can read a
// command line).
var uploadSettings = settings.Table{
	{Env: "PULSEVAULT_UPLOAD_URL", Flag: "endpoint", Default: "http://127.0.0.1:8080/function/upload/", Usage: "tus endpoint", Check: settings.HTTPURL},
	{Env: "PULSEVAULT_TOKEN", Flag: "token", Usage: "bearer token; empty: the login of 'pulsevault login'"},
	{Env: "PULSEVAULT_VIDEOS_URL", Flag: "videos", Usage: "the videos API used by --wait; empty: ../videos/ next to the upload endpoint", Check: settings.Optional(settings.HTTPURL)},
}

// runUpload is the Pulse capture app's stand-in: a tus client.
func runUpload(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("upload", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	vs := settings.Bind(fs, uploadSettings, os.Getenv)
	state := fs.String("state", tusclient.DefaultStatePath(), "")
	chunk := fs.Int64("chunk-size", tusclient.DefaultChunkSize, "")
	noProgress := fs.Bool("no-progress", false, "")
	wait := fs.Bool("wait", false, "")
	waitTimeout := fs.Duration("wait-timeout", 10*time.Minute, "")
	// Flags may follow the files.
	files, err := settings.Parse(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, uploadUsage)
		return nil
	}
	if err == nil {
		err = vs.Validate()
	}
	if err != nil {
		return fmt.Errorf("%w: upload: %v (run pulsevault upload -h)", errUsage, err)
	}
	endpoint, token, videosURL := vs.String("PULSEVAULT_UPLOAD_URL"), vs.String("PULSEVAULT_TOKEN"), vs.String("PULSEVAULT_VIDEOS_URL")
	switch {
	case len(files) == 0:
		return fmt.Errorf("%w: upload needs at least one FILE (run pulsevault upload -h)", errUsage)
	case *chunk < 1:
		return fmt.Errorf("%w: upload: --chunk-size must be at least 1", errUsage)
	case *waitTimeout <= 0:
		return fmt.Errorf("%w: upload: --wait-timeout must be positive", errUsage)
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: upload: --endpoint %q must be an http(s) URL", errUsage, endpoint)
	}
	if videosURL == "" {
		videosURL = u.ResolveReference(&url.URL{Path: "../videos/"}).String()
	}
	tokens := func(context.Context) (string, error) { return token, nil }
	if token == "" {
		stored, l, err := loginTokens(ctx)
		if err != nil {
			return fmt.Errorf("upload: %w", err)
		}
		if l == nil {
			return fmt.Errorf("%w: upload needs a token: run pulsevault login, or give --token T / PULSEVAULT_TOKEN", errUsage)
		}
		tokens = stored
		if _, err := tokens(ctx); err != nil { // fail before reading any file
			return fmt.Errorf("upload: %w", err)
		}
	}
	c := &tusclient.Client{Endpoint: endpoint, Tokens: tokens, ChunkSize: *chunk, State: tusclient.OpenState(*state)}
	for _, path := range files {
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("upload: %w", err)
		}
		var bar *progressbar.ProgressBar
		if !*noProgress {
			bar = progressbar.DefaultBytes(fi.Size(), "uploading")
			c.Progress = func(n int64) { _ = bar.Set64(n) }
		} else {
			c.Progress = nil
		}
		md := map[string]string{"filename": filepath.Base(path)}
		if t := mime.TypeByExtension(strings.ToLower(filepath.Ext(path))); t != "" {
			md["filetype"] = t
		}
		loc, err := c.Upload(ctx, path, md)
		if bar != nil {
			_ = bar.Exit()
			fmt.Fprintln(stderr)
		}
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("upload: interrupted; run the same command again to resume: %w", ctx.Err())
			}
			return fmt.Errorf("upload: %s: %w", path, err)
		}
		id := videoid.FromUpload(loc[strings.LastIndexByte(loc, '/')+1:])
		fmt.Fprintf(stdout, "video %s  %s\n", id, path)
		if *wait {
			if err := waitPlayable(ctx, videosURL, tokens, id, *waitTimeout, stdout); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitPlayable polls the videos API until the video is playable (ready or
// complete), or ends rejected or failed, printing each status it sees.
func waitPlayable(ctx context.Context, videosURL string, tokens func(context.Context) (string, error), id string, timeout time.Duration, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	target := strings.TrimRight(videosURL, "/") + "/" + id
	last := ""
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return fmt.Errorf("upload: --wait: %w", err)
		}
		token, err := tokens(ctx)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		var v struct {
			Status string `json:"status"`
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			switch resp.StatusCode {
			case http.StatusOK:
				err = json.NewDecoder(resp.Body).Decode(&v)
			case http.StatusNotFound: // not finalized yet
			case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout: // poll through
			case http.StatusUnauthorized:
				err = errors.New("the videos API refused the token (401)")
			default:
				err = fmt.Errorf("the videos API answered %d", resp.StatusCode)
			}
			resp.Body.Close()
		}
		if err != nil && ctx.Err() == nil && !isTransient(err) {
			return fmt.Errorf("upload: --wait: %w", err)
		}
		if v.Status != "" && v.Status != last {
			last = v.Status
			fmt.Fprintf(stdout, "video %s  %s\n", id, v.Status)
		}
		switch v.Status {
		case "ready", "complete":
			return nil
		case "rejected", "failed":
			return fmt.Errorf("upload: video %s was %s (its meta.json has the reason)", id, v.Status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("upload: --wait: video %s not playable after %s (last status %q)", id, timeout, last)
		case <-time.After(time.Second):
		}
	}
}

// isTransient reports network errors worth polling through.
func isTransient(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}
