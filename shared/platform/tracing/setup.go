package tracing

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Env names the standard OpenTelemetry variables Setup reads.
const (
	EnvEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvSDKDisabled    = "OTEL_SDK_DISABLED"
)

// Enabled reports whether getenv asks for trace export.
func Enabled(getenv func(string) string) bool {
	if getenv == nil {
		getenv = os.Getenv
	}
	if strings.EqualFold(strings.TrimSpace(getenv(EnvSDKDisabled)), "true") {
		return false
	}
	return strings.TrimSpace(getenv(EnvEndpoint)) != "" || strings.TrimSpace(getenv(EnvTracesEndpoint)) != ""
}

// Setup installs the global tracer provider for service. With export off
// (no endpoint set) it installs nothing and spans are no-ops that still
// pass their parent's trace context on. With it on, spans go in batches to
// the OTLP/HTTP endpoint (the exporter reads the standard OTEL_EXPORTER_OTLP_*
// variables itself: endpoint, headers, timeout, insecure). The returned
// shutdown flushes what is buffered; call it before the process exits.
func Setup(ctx context.Context, service string) (shutdown func(context.Context) error, err error) {
	if !Enabled(os.Getenv) {
		return func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, errors.Join(errors.New("tracing: OTLP exporter"), err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", service)))
	if err != nil {
		res = resource.Default()
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)),
		sdktrace.WithResource(res),
	)
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}

// Init is Setup for a process's main: an exporter that cannot be set up is
// logged and tracing stays off, since traces are not worth refusing to run.
// The returned stop flushes buffered spans, waiting at most two seconds so a
// collector that is down cannot hold up exit.
func Init(ctx context.Context, service string, log *slog.Logger) (stop func()) {
	shutdown, err := Setup(ctx, service)
	if err != nil {
		log.Warn("tracing off: the OTLP exporter could not be set up", "err", err)
		return func() {}
	}
	if Enabled(os.Getenv) {
		log.Info("tracing on: spans go to the OTLP endpoint", "service", service)
	}
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = shutdown(sctx)
	}
}
