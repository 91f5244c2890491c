package storage_test

import (
	"testing"

	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/testutil/fakestore"
	"github.com/mieweb/pulsevault/shared/testutil/testenv"
)

// TestContract runs the fake store's contract against the real store
// (versitygw): the semantics the unit tier's fakestore promises are the
// ones the integration tier sees.
func TestContract(t *testing.T) {
	env := testenv.Start(t)
	st, err := storage.FromConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	fakestore.RunContract(t, st, env.Config.MediaBucket, env.Config.UploadsBucket, "contract/")
}
