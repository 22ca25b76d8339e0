package accesstest

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"connectrpc.com/connect"

	"plinth.dev/plinth/capabilities/access"
	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/internal/pagetoken/pagetokentest"
	accessv1 "plinth.dev/plinth/sdk/go/gen/plinth/access/v1"
)

// Run runs the conformance suite against the Store that newStore returns.
// newStore is called once per subtest, possibly from several subtests at
// once, and must return an empty store of its own each time.
func Run(t *testing.T, newStore func(t *testing.T) access.Store, opts ...Option) {
	s := suite{newStore: newStore}
	for _, o := range opts {
		o.apply(&s)
	}

	s.run(t, "CreatePrincipal/RoundTrip", testCreatePrincipal)
	s.run(t, "CreatePrincipal/NameTaken", testCreatePrincipalNameTaken)
	s.run(t, "CreatePrincipal/ConcurrentSameName", testConcurrentCreatePrincipalSameName)
	s.run(t, "GetPrincipal/Unknown", testGetPrincipalUnknown)
	s.run(t, "ListPrincipals/EveryPrincipalOnceInIDOrder", testListPrincipals)
	s.run(t, "ListPrincipals/Empty", testListPrincipalsEmpty)
	s.run(t, "ListPrincipals/GarbagePageToken", testListPrincipalsGarbageToken)

	s.run(t, "Roles/GrantAndRevoke", testGrantAndRevokeRoles)
	s.run(t, "Roles/UndefinedRoleRefused", testGrantUndefinedRole)
	s.run(t, "Roles/UnknownPrincipal", testRolesOfUnknownPrincipal)
	s.run(t, "Roles/ConcurrentGrants", testConcurrentGrants)
	s.run(t, "Roles/AuthenticateSeesCurrentRoles", testAuthenticateSeesCurrentRoles)

	s.run(t, "IssueApiKey/SecretFormatAndMetadata", testIssueApiKey)
	s.run(t, "IssueApiKey/DistinctKeys", testIssueDistinctKeys)
	s.run(t, "IssueApiKey/UnknownPrincipal", testIssueUnknownPrincipal)
	s.run(t, "IssueApiKey/ExpiresAt", testIssueExpiresAt)
	s.run(t, "IssueApiKey/ExpiresAtNotInFuture", testIssueExpiresAtNotInFuture)

	s.run(t, "Authenticate/OneErrorForEveryFailure", testAuthenticateOneError)
	s.run(t, "Authenticate/RecordsUseAtMostOncePerInterval", testAuthenticateRecordsUse)
	s.run(t, "Authenticate/Concurrent", testConcurrentAuthenticate)

	s.run(t, "RotateApiKey/OverlapByTheClock", testRotateOverlap)
	s.run(t, "RotateApiKey/ZeroOverlap", testRotateZeroOverlap)
	s.run(t, "RotateApiKey/NeverLengthensTheOldKey", testRotateNeverLengthens)
	s.run(t, "RotateApiKey/NewKeyExpiry", testRotateNewKeyExpiry)
	s.run(t, "RotateApiKey/RevokedOrExpiredRefused", testRotateNotActive)
	s.run(t, "RotateApiKey/Unknown", testRotateUnknown)
	s.run(t, "RotateApiKey/OverlapOutOfRange", testRotateOverlapOutOfRange)
	s.run(t, "RotateApiKey/Concurrent", testConcurrentRotations)

	s.run(t, "RevokeApiKey/RefusedFromTheNextCall", testRevokeImmediate)
	s.run(t, "RevokeApiKey/DuringRotationOverlap", testRevokeDuringOverlap)
	s.run(t, "RevokeApiKey/Unknown", testRevokeUnknown)

	s.run(t, "ListApiKeys/EveryKeyOnceInIDOrder", testListApiKeys)
	s.run(t, "ListApiKeys/UnknownPrincipal", testListApiKeysUnknownPrincipal)
	s.run(t, "ListApiKeys/PageTokenOfAnotherPrincipal", testListApiKeysTokenOfAnotherPrincipal)
	s.run(t, "Lists/ForgedPageTokens", testListForgedTokens)

	s.run(t, "Secrets/NeverReturnedAfterIssue", testSecretsNeverReturned)
	s.run(t, "Secrets/NeverStored", testSecretsNeverStored)

	s.run(t, "Bootstrap/Once", testBootstrapOnce)
	s.run(t, "Bootstrap/NotWhenPrincipalsExist", testBootstrapNotWhenPrincipalsExist)
	s.run(t, "Bootstrap/Concurrent", testConcurrentBootstrap)
	s.run(t, "Bootstrap/UndefinedRole", testBootstrapUndefinedRole)

	s.run(t, "Store/DuplicateIDs", testStoreDuplicateIDs)
	s.run(t, "Store/PrefixUnique", testStorePrefixUnique)
	s.run(t, "Store/KeyOfUnknownPrincipal", testStoreKeyOfUnknownPrincipal)
	s.run(t, "Store/UnknownKey", testStoreUnknownKey)
	s.run(t, "Store/RolesSortedAndUnique", testStoreRolesSorted)
	s.run(t, "Store/FailedChangeStoresNothing", testStoreFailedChange)
	s.run(t, "Store/RotationBothOrNeither", testStoreRotationBothOrNeither)
	s.run(t, "Store/OnlyTimesChange", testStoreOnlyTimesChange)
	s.run(t, "Store/RecordKeyUse", testStoreRecordKeyUse)
	s.run(t, "Store/ResultsNotShared", testStoreResultsNotShared)
}

// --- Principals ---------------------------------------------------------------

func testCreatePrincipal(t *testing.T, h *harness) {
	res, err := h.svc.CreatePrincipal(t.Context(), connect.NewRequest(&accessv1.CreatePrincipalRequest{
		Name: "payroll-app", Description: "runs payroll",
	}))
	if err != nil {
		t.Fatalf("CreatePrincipal: %v", err)
	}
	p := res.Msg.GetPrincipal()
	if !principalIDPattern.MatchString(p.GetId()) {
		t.Errorf("id %q does not match %s", p.GetId(), principalIDPattern)
	}
	want := &accessv1.Principal{Id: p.GetId(), Name: "payroll-app", Description: "runs payroll", CreatedAt: stamp(epoch)}
	wantSame(t, "CreatePrincipal answered", p, want)
	wantSame(t, "GetPrincipal", h.getPrincipal(t, p.GetId()), want)
	pages := h.listPrincipals(t, 0)
	if len(pages) != 1 || len(pages[0]) != 1 {
		t.Fatalf("ListPrincipals: %d pages, want one page of one principal", len(pages))
	}
	wantSame(t, "ListPrincipals", pages[0][0], want)
}

func testCreatePrincipalNameTaken(t *testing.T, h *harness) {
	first := h.newPrincipal(t)
	_, err := h.svc.CreatePrincipal(t.Context(), connect.NewRequest(&accessv1.CreatePrincipalRequest{
		Name: first.GetName(), Description: "an impostor",
	}))
	nt := errorAs[*access.NameTakenError](t, err)
	if nt.Name != first.GetName() {
		t.Errorf("NameTakenError.Name = %q, want %q", nt.Name, first.GetName())
	}
	wantKind(t, err, domainerr.KindAlreadyExists)
	if n := len(h.listPrincipals(t, 0)[0]); n != 1 {
		t.Fatalf("%d principals after a refused duplicate, want 1", n)
	}
	wantSame(t, "the first principal", h.getPrincipal(t, first.GetId()), first)
}

func testConcurrentCreatePrincipalSameName(t *testing.T, h *harness) {
	const n = 16
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
		won   = make([]*accessv1.Principal, n)
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			res, err := h.svc.CreatePrincipal(t.Context(), connect.NewRequest(&accessv1.CreatePrincipalRequest{
				Name: "support-console", Description: fmt.Sprintf("racer %d", i),
			}))
			if err != nil {
				errs[i] = err
				return
			}
			won[i] = res.Msg.GetPrincipal()
		})
	}
	close(start)
	wg.Wait()
	var winner *accessv1.Principal
	for i := range n {
		if errs[i] != nil {
			errorAs[*access.NameTakenError](t, errs[i])
			continue
		}
		if winner != nil {
			t.Fatalf("two principals named support-console were created: %s and %s", winner.GetId(), won[i].GetId())
		}
		winner = won[i]
	}
	if winner == nil {
		t.Fatal("no CreatePrincipal succeeded")
	}
	all := h.listPrincipals(t, 0)[0]
	if len(all) != 1 || all[0].GetId() != winner.GetId() {
		t.Fatalf("ListPrincipals = %v, want only the winner %s", all, winner.GetId())
	}
}

func testGetPrincipalUnknown(t *testing.T, h *harness) {
	const id = "prn_00000000000000000000000000"
	_, err := h.svc.GetPrincipal(t.Context(), connect.NewRequest(&accessv1.GetPrincipalRequest{PrincipalId: id}))
	wantNotFound(t, err, "principal", id)
}

func testListPrincipals(t *testing.T, h *harness) {
	var want []string
	for range 7 {
		want = append(want, h.newPrincipal(t).GetId())
	}
	slices.Sort(want)
	for _, size := range []int32{1, 2, 3, 6, 7, 8, 0, 200} {
		pages := h.listPrincipals(t, size)
		var got []string
		for i, page := range pages {
			limit := int(size)
			if size == 0 {
				limit = access.DefaultPageSize
			}
			if len(page) > limit || (i < len(pages)-1 && len(page) != limit) {
				t.Fatalf("page size %d: page %d has %d principals", size, i, len(page))
			}
			for _, p := range page {
				got = append(got, p.GetId())
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("page size %d: listed %v, want every principal once in id order %v", size, got, want)
		}
		if len(pages[len(pages)-1]) == 0 && len(pages) > 1 {
			t.Errorf("page size %d: the last page is empty; the page before should have had no next_page_token", size)
		}
	}
}

func testListPrincipalsEmpty(t *testing.T, h *harness) {
	pages := h.listPrincipals(t, 0)
	if len(pages) != 1 || len(pages[0]) != 0 {
		t.Fatalf("ListPrincipals on an empty store: %v, want one empty page", pages)
	}
}

func testListPrincipalsGarbageToken(t *testing.T, h *harness) {
	h.newPrincipal(t)
	_, err := h.svc.ListPrincipals(t.Context(), connect.NewRequest(&accessv1.ListPrincipalsRequest{PageToken: "not-a-token"}))
	wantInvalidArgument(t, err, "page_token")
}

// testListForgedTokens: page tokens are signed. For both listings, a
// token altered anywhere or made under another deployment's key is
// refused, and never trusted as a place to resume from; a token from
// another gateway of the same deployment (another Service with the same
// key) gives the same next page; a token of one listing is refused by the
// other.
func testListForgedTokens(t *testing.T, h *harness) {
	ctx := t.Context()
	p := h.newPrincipal(t)
	for range 2 {
		h.newPrincipal(t)
		h.mustIssue(t, p.GetId())
	}
	h.mustIssue(t, p.GetId())
	gatewayB := access.NewService(h.store, access.WithPageTokens(pageTokens(t, pagetokentest.Key)))
	otherDeployment := access.NewService(h.store, access.WithPageTokens(pageTokens(t, pagetokentest.OtherKey)))
	type page struct {
		ids  []string
		next string
	}
	principals := func(svc *access.Service, token string) (page, error) {
		res, err := svc.ListPrincipals(ctx, connect.NewRequest(&accessv1.ListPrincipalsRequest{PageSize: 1, PageToken: token}))
		if err != nil {
			return page{}, err
		}
		var ids []string
		for _, p := range res.Msg.GetPrincipals() {
			ids = append(ids, p.GetId())
		}
		return page{ids, res.Msg.GetNextPageToken()}, nil
	}
	keys := func(svc *access.Service, token string) (page, error) {
		res, err := svc.ListApiKeys(ctx, connect.NewRequest(&accessv1.ListApiKeysRequest{PrincipalId: p.GetId(), PageSize: 1, PageToken: token}))
		if err != nil {
			return page{}, err
		}
		var ids []string
		for _, k := range res.Msg.GetApiKeys() {
			ids = append(ids, k.GetId())
		}
		return page{ids, res.Msg.GetNextPageToken()}, nil
	}
	listings := []struct {
		name string
		list func(svc *access.Service, token string) (page, error)
	}{{"ListPrincipals", principals}, {"ListApiKeys", keys}}
	tokens := map[string]string{}
	for _, l := range listings {
		first, err := l.list(h.svc, "")
		if err != nil || first.next == "" {
			t.Fatalf("%s, page 1: %v, %v; want a next_page_token", l.name, first, err)
		}
		tokens[l.name] = first.next
		second, err := l.list(h.svc, first.next)
		if err != nil {
			t.Fatalf("%s, page 2: %v", l.name, err)
		}
		for _, forged := range pagetokentest.Altered(first.next) {
			_, err := l.list(h.svc, forged)
			wantInvalidArgument(t, err, "page_token")
		}
		theirs, err := l.list(otherDeployment, "")
		if err != nil {
			t.Fatal(err)
		}
		_, err = l.list(h.svc, theirs.next)
		wantInvalidArgument(t, err, "page_token")
		onB, err := l.list(gatewayB, first.next)
		if err != nil {
			t.Fatalf("%s: another gateway of the deployment refused the token: %v", l.name, err)
		}
		if !slices.Equal(onB.ids, second.ids) {
			t.Fatalf("%s: page 2 on another gateway = %v, want %v", l.name, onB.ids, second.ids)
		}
	}
	_, err := principals(h.svc, tokens["ListApiKeys"])
	wantInvalidArgument(t, err, "page_token")
	_, err = keys(h.svc, tokens["ListPrincipals"])
	wantInvalidArgument(t, err, "page_token")
}

// --- Roles ------------------------------------------------------------------

func testGrantAndRevokeRoles(t *testing.T, h *harness) {
	p := h.newPrincipal(t)
	ctx := t.Context()
	steps := []struct {
		grant bool
		role  string
		want  []string
	}{
		{true, "support", []string{"support"}},
		{true, "payroll.operator", []string{"payroll.operator", "support"}},
		{true, "admin", []string{"admin", "payroll.operator", "support"}},
		{true, "support", []string{"admin", "payroll.operator", "support"}}, // held already
		{false, "payroll.operator", []string{"admin", "support"}},
		{false, "payroll.operator", []string{"admin", "support"}}, // not held
		{false, "admin", []string{"support"}},
		{false, "support", nil},
	}
	for _, st := range steps {
		var (
			got *accessv1.Principal
			err error
		)
		if st.grant {
			got, err = h.grant(ctx, p.GetId(), st.role)
		} else {
			got, err = h.revokeRole(ctx, p.GetId(), st.role)
		}
		if err != nil {
			t.Fatalf("grant=%v %s: %v", st.grant, st.role, err)
		}
		want := &accessv1.Principal{Id: p.GetId(), Name: p.GetName(), Description: p.GetDescription(), Roles: st.want, CreatedAt: p.GetCreatedAt()}
		wantSame(t, fmt.Sprintf("after grant=%v %s, the answer", st.grant, st.role), got, want)
		wantSame(t, fmt.Sprintf("after grant=%v %s, GetPrincipal", st.grant, st.role), h.getPrincipal(t, p.GetId()), want)
	}
}

func testGrantUndefinedRole(t *testing.T, h *harness) {
	p := h.newPrincipal(t)
	if _, err := h.grant(t.Context(), p.GetId(), "support"); err != nil {
		t.Fatal(err)
	}
	_, err := h.grant(t.Context(), p.GetId(), undefinedRole+"-role")
	ur := errorAs[*access.UnknownRoleError](t, err)
	if ur.Role != undefinedRole+"-role" {
		t.Errorf("UnknownRoleError.Role = %q", ur.Role)
	}
	wantKind(t, err, domainerr.KindInvalidArgument)
	if got := h.getPrincipal(t, p.GetId()).GetRoles(); !slices.Equal(got, []string{"support"}) {
		t.Fatalf("roles after a refused grant: %q, want [support]", got)
	}

	// A role that was granted and is no longer defined can still be taken
	// away.
	if _, err := h.store.GrantRole(t.Context(), p.GetId(), undefinedRole+"-since"); err != nil {
		t.Fatalf("Store.GrantRole: %v", err)
	}
	got, err := h.revokeRole(t.Context(), p.GetId(), undefinedRole+"-since")
	if err != nil {
		t.Fatalf("RevokeRole of a role no longer defined: %v", err)
	}
	if !slices.Equal(got.GetRoles(), []string{"support"}) {
		t.Fatalf("roles after revoking a role no longer defined: %q, want [support]", got.GetRoles())
	}
}

func testRolesOfUnknownPrincipal(t *testing.T, h *harness) {
	const id = "prn_00000000000000000000000000"
	h.newPrincipal(t)
	_, err := h.grant(t.Context(), id, "support")
	wantNotFound(t, err, "principal", id)
	_, err = h.revokeRole(t.Context(), id, "support")
	wantNotFound(t, err, "principal", id)
}

func testConcurrentGrants(t *testing.T, h *harness) {
	p := h.newPrincipal(t)
	const n = 16
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
		errs  = make([]error, 2*n)
		want  []string
	)
	for i := range n {
		want = append(want, fmt.Sprintf("role-%02d", i))
	}
	// Each role granted twice at once, all of them together.
	for i := range 2 * n {
		wg.Go(func() {
			<-start
			_, errs[i] = h.grant(t.Context(), p.GetId(), want[i%n])
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("GrantRole: %v", err)
		}
	}
	if got := h.getPrincipal(t, p.GetId()).GetRoles(); !slices.Equal(got, want) {
		t.Fatalf("roles after concurrent grants: %q, want %q", got, want)
	}
}

func testAuthenticateSeesCurrentRoles(t *testing.T, h *harness) {
	p := h.newPrincipal(t)
	k := h.mustIssue(t, p.GetId())
	if got := h.wantAuthenticates(t, "no role", k.secret, p); len(got.Roles) != 0 {
		t.Fatalf("roles %q, want none", got.Roles)
	}
	if _, err := h.grant(t.Context(), p.GetId(), "support"); err != nil {
		t.Fatal(err)
	}
	if got := h.wantAuthenticates(t, "after GrantRole", k.secret, p); !slices.Equal(got.Roles, []string{"support"}) {
		t.Fatalf("roles %q after GrantRole, want [support]", got.Roles)
	}
	if _, err := h.revokeRole(t.Context(), p.GetId(), "support"); err != nil {
		t.Fatal(err)
	}
	if got := h.wantAuthenticates(t, "after RevokeRole", k.secret, p); len(got.Roles) != 0 {
		t.Fatalf("roles %q after RevokeRole, want none", got.Roles)
	}
}
