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
// single-copy. Requests the server does not answer in time are sent again,
// as in EnsureStream.
func EnsureKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	ctx, cancel := apiContext(ctx)
	defer cancel()
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
		var kv jetstream.KeyValue
		err := retryAPI(ctx, func(ctx context.Context) (err error) { kv, err = js.KeyValue(ctx, cfg.Bucket); return err })
		switch {
		case err == nil:
			var st jetstream.KeyValueStatus
			if err := retryAPI(ctx, func(ctx context.Context) (err error) { st, err = kv.Status(ctx); return err }); err != nil {
				return nil, fmt.Errorf("bus: kv %s: %w", cfg.Bucket, err)
			}
			if s, ok := st.(*jetstream.KeyValueBucketStatus); ok {
				cfg.Replicas = s.StreamInfo().Config.Replicas
			}
		case !errors.Is(err, jetstream.ErrBucketNotFound):
			return nil, fmt.Errorf("bus: kv %s: %w", cfg.Bucket, err)
		}
	}
	var kv jetstream.KeyValue
	err := retryAPI(ctx, func(ctx context.Context) (err error) { kv, err = js.CreateOrUpdateKeyValue(ctx, cfg); return err })
	return kv, err
}
