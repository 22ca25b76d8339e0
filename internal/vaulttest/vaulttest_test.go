package vaulttest_test

import (
	"errors"
	"net/url"
	"os"
	"testing"

	"plinth.dev/plinth/internal/vaulttest"
)

func TestMain(m *testing.M) { os.Exit(vaulttest.Main(m)) }

func TestStartIsSharedAndUnsealed(t *testing.T) {
	t.Parallel()
	s := vaulttest.Start(t)
	if again := vaulttest.Start(t); again != s {
		t.Error("Start returned two servers in one test binary")
	}
	health, err := s.Client(t).Sys().HealthWithContext(t.Context())
	if err != nil {
		t.Fatalf("sys/health: %v", err)
	}
	if !health.Initialized || health.Sealed {
		t.Errorf("health = initialized %t, sealed %t; want initialized and unsealed", health.Initialized, health.Sealed)
	}
}

func TestClientIsRoot(t *testing.T) {
	t.Parallel()
	s := vaulttest.Start(t)
	self, err := s.Client(t).Auth().Token().LookupSelfWithContext(t.Context())
	if err != nil {
		t.Fatalf("token lookup-self: %v", err)
	}
	policies, err := self.TokenPolicies()
	if err != nil {
		t.Fatal(err)
	}
	if len(policies) != 1 || policies[0] != "root" {
		t.Errorf("token policies = %v, want [root]", policies)
	}
}

func TestEnableTransitGivesEachTestItsOwnMount(t *testing.T) {
	t.Parallel()
	s := vaulttest.Start(t)
	a := s.EnableTransit(t, "")
	b := s.EnableTransit(t, "")
	if a == b {
		t.Fatalf("two EnableTransit calls returned the same mount %q", a)
	}
	c := s.Client(t)
	if _, err := c.Logical().WriteWithContext(t.Context(), a+"/keys/k", nil); err != nil {
		t.Fatalf("create a transit key at %s: %v", a, err)
	}
	key, err := c.Logical().ReadWithContext(t.Context(), b+"/keys/k")
	if err != nil {
		t.Fatalf("read %s/keys/k: %v", b, err)
	}
	if key != nil {
		t.Errorf("a key created at mount %s shows at mount %s", a, b)
	}
}

func TestEnableKVIsVersion2(t *testing.T) {
	t.Parallel()
	s := vaulttest.Start(t)
	mount := s.EnableKV(t, "")
	kv := s.Client(t).KVv2(mount)
	if _, err := kv.Put(t.Context(), "p", map[string]any{"k": "v"}); err != nil {
		t.Fatalf("put: %v", err)
	}
	got, err := kv.Get(t.Context(), "p")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.Data["k"] != "v" || got.VersionMetadata == nil || got.VersionMetadata.Version != 1 {
		t.Errorf("got %v (metadata %+v), want k=v at version 1", got.Data, got.VersionMetadata)
	}
}

func TestStopAndRestartKeepAddressAndToken(t *testing.T) {
	t.Parallel()
	s := vaulttest.NewServer(t)
	addr, token := s.Addr, s.Token
	mount := s.EnableTransit(t, "")
	c := s.Client(t)

	s.Stop()
	if s.Running() {
		t.Error("Running after Stop")
	}
	_, err := c.Sys().HealthWithContext(t.Context())
	var urlErr *url.Error
	if !errors.As(err, &urlErr) {
		t.Errorf("sys/health of a stopped server: got %v, want a connection error", err)
	}
	s.Stop() // a second Stop does nothing

	if err := s.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if s.Addr != addr || s.Token != token {
		t.Errorf("after Restart: %s %s, want %s %s", s.Addr, s.Token, addr, token)
	}
	// The old client works again: same address, same token.
	if _, err := c.Auth().Token().LookupSelfWithContext(t.Context()); err != nil {
		t.Fatalf("the client from before the restart: %v", err)
	}
	// A dev server is in memory: the mount did not survive.
	mounts, err := c.Sys().ListMountsWithContext(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mounts[mount+"/"]; ok {
		t.Errorf("mount %s survived a restart of an in-memory dev server", mount)
	}
}
