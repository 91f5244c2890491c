package tests

import "os"

// The end-to-end tests mint HS256 tokens with a shared secret (scripts'
// mode, off by default): every process they start inherits this, through
// the provider's configuration, unless a test names its own issuer.
// Tests of the OpenID flows set AUTH_HS256=off in their own processes.
func init() {
	if os.Getenv("AUTH_HS256") == "" {
		os.Setenv("AUTH_HS256", "on")
	}
}
