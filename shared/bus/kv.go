package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// EnsureKeyValue creates the key-value bucket or brings it to cfg, like
// jetstream's CreateOrUpdateKeyValue, except that Replicas 0 keeps an
// existing bucket's count (CreateOrUpdateKeyValue would make it 1): a
// process that is not told NATS_REPLICAS never makes a replicated bucket
// single-copy.
func EnsureKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
		kv, err := js.KeyValue(ctx, cfg.Bucket)
		switch {
		case err == nil:
			st, err := kv.Status(ctx)
			if err != nil {
				return nil, fmt.Errorf("bus: kv %s: %w", cfg.Bucket, err)
			}
			if s, ok := st.(*jetstream.KeyValueBucketStatus); ok {
				cfg.Replicas = s.StreamInfo().Config.Replicas
			}
		case !errors.Is(err, jetstream.ErrBucketNotFound):
			return nil, fmt.Errorf("bus: kv %s: %w", cfg.Bucket, err)
		}
	}
	return js.CreateOrUpdateKeyValue(ctx, cfg)
}
