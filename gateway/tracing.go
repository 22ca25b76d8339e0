package gateway

import (
	"context"
	"fmt"
	"os"

	"connectrpc.com/connect"
	"connectrpc.com/otelconnect"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
)

// newTracing returns the interceptor that traces capability calls and a
// function that flushes and stops the exporter, or (nil, no-op) when tracing
// is off. Spans carry procedures, codes and sizes, never message contents.
func newTracing(ctx context.Context, cfg TracingConfig) (connect.Interceptor, func(context.Context) error, error) {
	noop := func(context.Context) error { return nil }
	var exporter sdktrace.SpanExporter
	switch cfg.Exporter {
	case "none", "":
		return nil, noop, nil
	case "stdout":
		e, err := stdouttrace.New(stdouttrace.WithWriter(os.Stdout))
		if err != nil {
			return nil, noop, fmt.Errorf("tracing: %w", err)
		}
		exporter = e
	case "otlp":
		e, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.Endpoint))
		if err != nil {
			return nil, noop, fmt.Errorf("tracing: otlp exporter for %s: %w", cfg.Endpoint, err)
		}
		exporter = e
	default:
		return nil, noop, fmt.Errorf("tracing: unknown exporter %q", cfg.Exporter)
	}
	provider := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exporter),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName("plinth"))),
	)
	interceptor, err := otelconnect.NewInterceptor(
		otelconnect.WithTracerProvider(provider),
		otelconnect.WithoutMetrics(), // Prometheus has the metrics.
		otelconnect.WithTrustRemote(),
	)
	if err != nil {
		return nil, noop, fmt.Errorf("tracing: %w", err)
	}
	return interceptor, provider.Shutdown, nil
}
