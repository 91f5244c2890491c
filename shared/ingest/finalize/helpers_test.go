package finalize

import (
	"io"
	"log/slog"

	"github.com/mieweb/pulsevault/shared/platform/logging"
)

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func jsonLogger(w io.Writer) *slog.Logger { return logging.New(w, "debug", "test") }
