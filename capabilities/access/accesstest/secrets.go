package accesstest

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"plinth.dev/plinth/capabilities/access"
	accessv1 "plinth.dev/plinth/sdk/go/gen/plinth/access/v1"
)

// secretForms returns the forms in which a presented key, or the random
// part of it, could be kept by mistake: as presented, the secret part in
// hex (which is also what PostgreSQL shows of it in a bytea column), its
// bytes in base64, and its bytes as Go prints a []byte.
func secretForms(t *testing.T, presented string) []string {
	t.Helper()
	m := secretPattern.FindStringSubmatch(presented)
	if m == nil {
		t.Fatalf("not a well-formed key: %d characters", len(presented))
	}
	secretHex := presented[len("plk_")+len(m[1])+1:]
	raw, err := hex.DecodeString(secretHex)
	if err != nil {
		t.Fatal(err)
	}
	goBytes := fmt.Sprintf("%#v", raw)
	return []string{
		presented,
		secretHex,
		strings.ToUpper(secretHex),
		base64.StdEncoding.EncodeToString(raw),
		base64.RawURLEncoding.EncodeToString(raw),
		goBytes[len("[]byte{") : len(goBytes)-1],
	}
}

// hashForms returns the forms in which a stored hash could leave the
// service by mistake.
func hashForms(hash []byte) []string {
	return []string{
		hex.EncodeToString(hash),
		base64.StdEncoding.EncodeToString(hash),
		base64.RawStdEncoding.EncodeToString(hash),
		base64.RawURLEncoding.EncodeToString(hash),
	}
}

// wantNone fails the test if text holds any of forms.
func wantNone(t *testing.T, where, text string, forms []string) {
	t.Helper()
	for _, f := range forms {
		if strings.Contains(text, f) {
			t.Fatalf("%s holds a secret (in the form %.12s...)", where, f)
		}
	}
}

// asText renders messages every way they can leave the gateway.
func asText(t *testing.T, msgs ...proto.Message) string {
	t.Helper()
	var b strings.Builder
	for _, m := range msgs {
		j, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		bin, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(prototext.Format(m))
		b.Write(j)
		b.WriteString(hex.EncodeToString(bin))
		b.Write(bin)
	}
	return b.String()
}

func testSecretsNeverReturned(t *testing.T, h *harness) {
	// The contract: a key's description has no place for a secret or a
	// hash.
	for _, md := range []protoreflect.MessageDescriptor{
		(&accessv1.ApiKey{}).ProtoReflect().Descriptor(),
		(&accessv1.Principal{}).ProtoReflect().Descriptor(),
	} {
		for i := range md.Fields().Len() {
			f := md.Fields().Get(i)
			name := strings.ToLower(string(f.Name()))
			if strings.Contains(name, "secret") || strings.Contains(name, "hash") || f.Kind() == protoreflect.BytesKind {
				t.Fatalf("%s has field %s, which could carry a secret or its hash", md.FullName(), f.Name())
			}
		}
	}

	p := h.newPrincipal(t)
	first := h.mustIssue(t, p.GetId())
	second, previous := h.mustRotate(t, first.key.GetId(), time.Hour)
	h.wantAuthenticates(t, "first", first.secret, p)
	h.wantAuthenticates(t, "second", second.secret, p)
	revoked, err := h.revokeKey(t.Context(), second.key.GetId())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	got, err := h.svc.GetPrincipal(ctx, connect.NewRequest(&accessv1.GetPrincipalRequest{PrincipalId: p.GetId()}))
	if err != nil {
		t.Fatal(err)
	}
	principals, err := h.svc.ListPrincipals(ctx, connect.NewRequest(&accessv1.ListPrincipalsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := h.svc.ListApiKeys(ctx, connect.NewRequest(&accessv1.ListApiKeysRequest{PrincipalId: p.GetId()}))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys.Msg.GetApiKeys()) != 2 {
		t.Fatalf("ListApiKeys listed %d keys, want 2", len(keys.Msg.GetApiKeys()))
	}
	text := asText(t, got.Msg, principals.Msg, keys.Msg, revoked, previous, first.key, second.key)
	for _, k := range []issued{first, second} {
		wantNone(t, "what the capabilities answer about keys", text, secretForms(t, k.secret))
		stored, err := h.store.GetKey(ctx, k.key.GetId())
		if err != nil {
			t.Fatal(err)
		}
		wantNone(t, "what the capabilities answer about keys (the stored hash)", text, hashForms(stored.SecretHash))
	}
}

func testSecretsNeverStored(t *testing.T, h *harness) {
	ctx := t.Context()
	bootstrapSecret, err := h.svc.Bootstrap(ctx)
	if err != nil || bootstrapSecret == "" {
		t.Fatalf("Bootstrap = %d characters, %v; want a secret", len(bootstrapSecret), err)
	}
	p := h.newPrincipal(t)
	if _, err := h.grant(ctx, p.GetId(), "support"); err != nil {
		t.Fatal(err)
	}
	first := h.mustIssue(t, p.GetId())
	second, _ := h.mustRotate(t, first.key.GetId(), time.Hour)
	third := h.mustIssue(t, p.GetId())
	for _, s := range []string{bootstrapSecret, first.secret, second.secret, third.secret} {
		if _, err := h.svc.Authenticate(ctx, s); err != nil {
			t.Fatalf("Authenticate: %v", err)
		}
	}
	if _, err := h.revokeKey(ctx, third.key.GetId()); err != nil {
		t.Fatal(err)
	}

	// Everything the Store's methods return.
	var b strings.Builder
	principals, err := h.store.ListPrincipals(ctx, access.PrincipalQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(principals) != 2 {
		t.Fatalf("Store.ListPrincipals: %d principals, want 2", len(principals))
	}
	fmt.Fprintf(&b, "%#v\n", principals)
	for _, pr := range principals {
		keys, err := h.store.ListKeys(ctx, access.KeyQuery{PrincipalID: pr.ID, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%#v\n", keys)
		for _, k := range keys {
			if len(k.SecretHash) != 32 {
				t.Fatalf("key %s: SecretHash has %d bytes, want 32", k.ID, len(k.SecretHash))
			}
			fmt.Fprintf(&b, "%x %s\n", k.SecretHash, k.SecretHash)
			got, owner, err := h.store.LookupKey(ctx, k.Prefix)
			if err != nil {
				t.Fatalf("Store.LookupKey: %v", err)
			}
			wantStoredKey(t, "Store.LookupKey", got, k)
			if owner.ID != pr.ID {
				t.Fatalf("Store.LookupKey: principal %s, want %s", owner.ID, pr.ID)
			}
			fmt.Fprintf(&b, "%#v %#v\n", got, owner)
		}
	}
	everything := b.String()
	if h.suite.dump != nil {
		everything += h.suite.dump(t, h.store)
	}
	for _, s := range []string{bootstrapSecret, first.secret, second.secret, third.secret} {
		wantNone(t, "the store", everything, secretForms(t, s))
	}
}

// --- Bootstrap ----------------------------------------------------------------

func testBootstrapOnce(t *testing.T, h *harness) {
	ctx := t.Context()
	secret, err := h.svc.Bootstrap(ctx)
	if err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	if !secretPattern.MatchString(secret) {
		t.Fatalf("Bootstrap returned %d characters, not a key", len(secret))
	}
	p, err := h.svc.Authenticate(ctx, secret)
	if err != nil {
		t.Fatalf("Authenticate with the bootstrap key: %v", err)
	}
	if p.Name != access.BootstrapPrincipalName || !slices.Equal(p.Roles, []string{access.BootstrapRole}) {
		t.Fatalf("bootstrap principal %q with roles %q, want %q with [%s]", p.Name, p.Roles, access.BootstrapPrincipalName, access.BootstrapRole)
	}
	pages := h.listKeys(t, p.ID, 0)
	if len(pages[0]) != 1 {
		t.Fatalf("the bootstrap principal has %d keys, want 1", len(pages[0]))
	}
	if k := pages[0][0]; k.GetExpiresAt() != nil || k.GetState() != accessv1.ApiKeyState_API_KEY_STATE_ACTIVE {
		t.Fatalf("bootstrap key: %v, want active and never expiring", k)
	}

	h.clock.Advance(time.Hour)
	again, err := h.svc.Bootstrap(ctx)
	if err != nil || again != "" {
		t.Fatalf("second Bootstrap = %d characters, %v; want \"\", nil", len(again), err)
	}
	if all := h.listPrincipals(t, 0)[0]; len(all) != 1 {
		t.Fatalf("%d principals after two bootstraps, want 1", len(all))
	}
	if pages := h.listKeys(t, p.ID, 0); len(pages[0]) != 1 {
		t.Fatalf("the bootstrap principal has %d keys after a second bootstrap, want 1", len(pages[0]))
	}
}

func testBootstrapNotWhenPrincipalsExist(t *testing.T, h *harness) {
	p := h.newPrincipal(t)
	secret, err := h.svc.Bootstrap(t.Context())
	if err != nil || secret != "" {
		t.Fatalf("Bootstrap with a principal in the store = %d characters, %v; want \"\", nil", len(secret), err)
	}
	all := h.listPrincipals(t, 0)[0]
	if len(all) != 1 || all[0].GetId() != p.GetId() {
		t.Fatalf("principals after Bootstrap: %v, want only %s", all, p.GetId())
	}
	if pages := h.listKeys(t, p.GetId(), 0); len(pages[0]) != 0 {
		t.Fatalf("Bootstrap issued a key to an existing principal")
	}
}

func testConcurrentBootstrap(t *testing.T, h *harness) {
	const n = 16
	var (
		start   = make(chan struct{})
		wg      sync.WaitGroup
		secrets = make([]string, n)
		errs    = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			secrets[i], errs[i] = h.svc.Bootstrap(t.Context())
		})
	}
	close(start)
	wg.Wait()
	var winner string
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Bootstrap %d: %v", i, errs[i])
		}
		if secrets[i] == "" {
			continue
		}
		if winner != "" {
			t.Fatal("two concurrent Bootstraps both returned a secret")
		}
		winner = secrets[i]
	}
	if winner == "" {
		t.Fatal("no concurrent Bootstrap returned a secret")
	}
	all := h.listPrincipals(t, 0)[0]
	if len(all) != 1 {
		t.Fatalf("%d principals after concurrent bootstraps, want 1", len(all))
	}
	if pages := h.listKeys(t, all[0].GetId(), 0); len(pages[0]) != 1 {
		t.Fatalf("%d keys after concurrent bootstraps, want 1", len(pages[0]))
	}
	h.wantAuthenticates(t, "the winning bootstrap key", winner, all[0])
}

func testBootstrapUndefinedRole(t *testing.T, h *harness) {
	svc := access.NewService(h.store, access.WithClock(h.clock.Now),
		access.WithRoleCheck(func(role string) bool { return role != access.BootstrapRole }))
	secret, err := svc.Bootstrap(t.Context())
	if secret != "" {
		t.Fatal("Bootstrap returned a secret though the bootstrap role is not defined")
	}
	ur := errorAs[*access.UnknownRoleError](t, err)
	if ur.Role != access.BootstrapRole {
		t.Fatalf("UnknownRoleError.Role = %q, want %q", ur.Role, access.BootstrapRole)
	}
	if all := h.listPrincipals(t, 0)[0]; len(all) != 0 {
		t.Fatalf("a refused Bootstrap stored %d principals", len(all))
	}
}
