// Package media is the media function: a playback token's bytes, served by
// shared/playback/mediaserve.
package media

import (
	"net/http"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/platform/fnrun"
	"github.com/mieweb/pulsevault/shared/platform/logging"
	"github.com/mieweb/pulsevault/shared/platform/secrets"
	"github.com/mieweb/pulsevault/shared/playback/mediaserve"
	"github.com/mieweb/pulsevault/shared/playback/token"
	"github.com/mieweb/pulsevault/shared/storage"
)

// Name is the function's name in stack.yml.
const Name = "media"

// server builds the Server from the environment on first use; see fnrun.Lazy
// for how a failure is retried.
var server = fnrun.Lazy(func() (*mediaserve.Server, error) {
	cfg, err := config.FromEnv(Name)
	if err != nil {
		return nil, err
	}
	st, err := storage.FromConfig(cfg)
	if err != nil {
		return nil, err
	}
	b, err := bus.ForFunction(cfg.NATSURL, Name) // audit events
	if err != nil {
		return nil, err
	}
	pub := event.NewPublisher(b, Name)
	s := mediaserve.NewServer(&mediaserve.Server{
		Store:  st,
		Bucket: cfg.MediaBucket,
		Keys:   token.NewFile(filepath.Join(secrets.Dir(), token.SecretName)).Keyring,
		Audit:  pub.Publish,
		Log:    logging.New(os.Stderr, cfg.LogLevel, "fn/"+Name),
	})
	// Also on the default registry, which fnrun's /metrics gathers.
	for _, c := range s.Collectors() {
		_ = prometheus.DefaultRegisterer.Register(c)
	}
	return s, nil
})

// Handle serves one request of the media function.
func Handle(w http.ResponseWriter, r *http.Request) {
	s, err := server()
	if err != nil {
		logging.New(os.Stderr, os.Getenv("LOG_LEVEL"), "fn/"+Name).Error("media: not configured", "err", err.Error())
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}
	s.ServeHTTP(w, r)
}
