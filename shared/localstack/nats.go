package localstack

// The embedded NATS server with JetStream, so `pulsevault dev` needs no
// separately installed NATS.

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATS is a running embedded NATS server.
type NATS struct {
	ns *server.Server
}

// NATSOptions configures StartNATS. A zero Port picks a free port, so tests never
// collide with a running `make dev`.
type NATSOptions struct {
	Host     string // default 127.0.0.1: the dev stack never listens beyond loopback
	Port     int
	StoreDir string // JetStream data lives here and survives restarts
}

// StartNATS launches the server and waits until it accepts clients.
func StartNATS(o NATSOptions) (*NATS, error) {
	if o.StoreDir == "" {
		return nil, errors.New("localstack: nats: StoreDir is required")
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	port := o.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	ns, err := server.NewServer(&server.Options{
		ServerName: "pulsevault-dev",
		Host:       o.Host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(o.StoreDir),
		NoSigs:     true,
		NoLog:      true,
		// JetStream's default max memory is a fraction of the machine's; the
		// dev stack keeps streams on disk and stays small.
		JetStreamMaxMemory: 64 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("localstack: nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("localstack: nats: not ready on %s:%d within 10s (port in use?)", o.Host, o.Port)
	}
	return &NATS{ns: ns}, nil
}

// URL is the client URL, e.g. nats://127.0.0.1:4222.
func (s *NATS) URL() string { return s.ns.ClientURL() }

// Shutdown stops the server and waits for it to finish.
func (s *NATS) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}
