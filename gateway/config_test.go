package gateway_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"plinth.dev/plinth/gateway"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plinth.toml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := gateway.LoadConfig("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:8080" || cfg.Limits.RequestTimeout.Std() != 30*time.Second ||
		cfg.Limits.MaxRequestBytes != 1<<20 || cfg.Tracing.Exporter != "none" || cfg.Log.Level != "info" {
		t.Errorf("unexpected defaults: %+v", cfg)
	}
}

func TestLoadConfigFileThenEnvironment(t *testing.T) {
	path := writeConfig(t, `
listen = "127.0.0.1:9000"
[limits]
request_timeout = "5s"
[postgres]
url = "postgres://plinth@127.0.0.1:5432/plinth"
max_conns = 4
[backends]
customers = "postgres"
`)
	cfg, err := gateway.LoadConfig(path, []string{
		"PLINTH_LISTEN=127.0.0.1:9001",
		"PLINTH_POSTGRES_MAX_CONNS=7",
		"PLINTH_LOG_FORMAT=text",
		"PLINTH_BACKENDS_CUSTOMERS=memory",
		"HOME=/root", // not ours: ignored
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9001" {
		t.Errorf("environment should override the file: listen = %q", cfg.Listen)
	}
	if cfg.Limits.RequestTimeout.Std() != 5*time.Second {
		t.Errorf("request_timeout = %s, want 5s from the file", cfg.Limits.RequestTimeout.Std())
	}
	if cfg.Postgres.MaxConns != 7 || cfg.Log.Format != "text" || cfg.Backends["customers"] != "memory" {
		t.Errorf("environment not applied: %+v", cfg)
	}
}

func TestLoadConfigRefusesWhatItDoesNotKnow(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		env        []string
		wantInErr  []string
	}{
		{name: "unknown key", file: "[limits]\nrequest_timout = \"5s\"\n", wantInErr: []string{"unknown key", "limits.request_timout"}},
		{name: "unknown section", file: "[postgress]\nurl = \"x\"\n", wantInErr: []string{"unknown key", "postgress"}},
		{name: "bad duration", file: "[limits]\nrequest_timeout = \"soon\"\n", wantInErr: []string{"request_timeout", "duration"}},
		{name: "wrong type", file: "listen = 8080\n", wantInErr: []string{"listen"}},
		{name: "bad listen", file: "listen = \"8080\"\n", wantInErr: []string{"listen", "host:port"}},
		{name: "bad level", env: []string{"PLINTH_LOG_LEVEL=loud"}, wantInErr: []string{"log.level", "loud"}},
		{name: "unknown variable", env: []string{"PLINTH_LISTN=127.0.0.1:1"}, wantInErr: []string{"PLINTH_LISTN", "PLINTH_LISTEN"}},
		{name: "bad integer variable", env: []string{"PLINTH_POSTGRES_MAX_CONNS=many"}, wantInErr: []string{"PLINTH_POSTGRES_MAX_CONNS", "integer"}},
		{name: "negative timeout", env: []string{"PLINTH_LIMITS_REQUEST_TIMEOUT=-1s"}, wantInErr: []string{"limits.request_timeout", "positive"}},
		{name: "otlp without endpoint", env: []string{"PLINTH_TRACING_EXPORTER=otlp"}, wantInErr: []string{"tracing.endpoint"}},
		{name: "bad exporter", env: []string{"PLINTH_TRACING_EXPORTER=jaeger"}, wantInErr: []string{"tracing.exporter", "jaeger"}},
		{name: "bad postgres url keeps password out", env: []string{"PLINTH_POSTGRES_URL=mysql://u:hunter2@h/db"}, wantInErr: []string{"postgres.url"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = writeConfig(t, tc.file)
			}
			_, err := gateway.LoadConfig(path, tc.env)
			if err == nil {
				t.Fatal("LoadConfig accepted a bad configuration")
			}
			for _, want := range tc.wantInErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error repeats a password: %q", err)
			}
		})
	}
}

// TestConfigDocsListEveryKey keeps docs/configuration.md in step with Config.
func TestConfigDocsListEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range gateway.EnvVars() {
		if !strings.Contains(string(doc), name) {
			t.Errorf("docs/configuration.md does not document %s", name)
		}
	}
}
