// Package localstack is the infrastructure of the single-machine stack:
// embedded NATS with JetStream (StartNATS), a supervised versitygw (StartS3),
// the lookup of the tools in ./bin (FindBinary), and Start, which runs
// them or points at external ones when NATS_URL / S3_ENDPOINT are set.
package localstack

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/platform/secrets"
)

// Stack is the running infrastructure. Config has NATSURL and S3Endpoint
// filled in with the addresses actually in use, and S3SecretKey when it
// was generated.
type Stack struct {
	Config config.Config
	NATS   *NATS // nil when external
	S3     *S3   // nil when external
	// S3SecretFile is where the local store's generated secret key is kept;
	// empty when the configuration gave one.
	S3SecretFile string

	s3log *os.File
}

// Start brings up whatever cfg asks to run locally, under cfg.DataDir.
func Start(ctx context.Context, cfg config.Config, log *slog.Logger) (*Stack, error) {
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "logs"), 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	st := &Stack{Config: cfg}
	if cfg.LocalNATS() {
		ns, err := StartNATS(NATSOptions{Port: cfg.NATSPort, StoreDir: filepath.Join(cfg.DataDir, "nats")})
		if err != nil {
			return nil, err
		}
		st.NATS = ns
		st.Config.NATSURL = ns.URL()
		log.Info("nats started", "url", ns.URL())
	}
	if cfg.LocalS3() {
		bin, err := FindBinary("versitygw")
		if err != nil {
			st.Stop()
			return nil, err
		}
		if cfg.S3SecretKey == "" {
			// Generated on first start, then reused: objects, and the
			// functions' copies of the secret, outlive one run.
			dir, name := filepath.Join(cfg.DataDir, "secrets"), config.SecretFiles["S3_SECRET_KEY"]
			key, _, err := secrets.Ensure(dir, name, secrets.Random(32))
			if err != nil {
				st.Stop()
				return nil, fmt.Errorf("local S3 secret: %w", err)
			}
			cfg.S3SecretKey, st.Config.S3SecretKey, st.S3SecretFile = key, key, filepath.Join(dir, name)
		}
		st.s3log, err = os.OpenFile(filepath.Join(cfg.DataDir, "logs", "versitygw.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			st.Stop()
			return nil, err
		}
		s3, err := StartS3(ctx, S3Options{
			Binary: bin, Port: cfg.S3Port, DataDir: filepath.Join(cfg.DataDir, "s3"),
			AccessKey: cfg.S3AccessKey, SecretKey: cfg.S3SecretKey, Region: cfg.S3Region,
			NATSURL: st.Config.NATSURL, EventSubject: cfg.EventSubject,
			LogFile: st.s3log, Logger: log,
		})
		if err != nil {
			st.Stop()
			return nil, fmt.Errorf("%w (log: %s)", err, st.s3log.Name())
		}
		st.S3 = s3
		st.Config.S3Endpoint = s3.Endpoint()
		log.Info("s3 started", "endpoint", s3.Endpoint())
	}
	return st, nil
}

// Stop stops what Start started, S3 first (it publishes to NATS).
func (st *Stack) Stop() {
	if st.S3 != nil {
		st.S3.Stop(3 * time.Second)
	}
	if st.NATS != nil {
		st.NATS.Shutdown()
	}
	if st.s3log != nil {
		st.s3log.Close()
	}
}
