package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// EnvRequireBrowser makes TestCatalogInChromium fail, rather than skip,
// when no Chromium (and curl) can be found: scripts/test.sh sets it.
const EnvRequireBrowser = "PLINTH_TEST_REQUIRE_BROWSER"

// EnvChromium names the Chromium binary to use, if not one on the PATH.
const EnvChromium = "PLINTH_TEST_CHROMIUM"

// EnvCatalogScreenshot, if set, is where TestCatalogInChromium saves a
// screenshot of the page, for a person to look at.
const EnvCatalogScreenshot = "PLINTH_TEST_CATALOG_SCREENSHOT"

// browserOrSkip returns the path of Chromium, or skips the test (fails it
// under scripts/test.sh) when there is none, or no curl.
func browserOrSkip(t *testing.T) string {
	t.Helper()
	missing := func(what string) {
		msg := what + " (Debian: apt-get install chromium curl)"
		if os.Getenv(EnvRequireBrowser) != "" {
			t.Fatal(msg + "; " + EnvRequireBrowser + " is set, so this fails instead of skipping")
		}
		t.Skip(msg)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		missing("curl is not installed")
	}
	if p := os.Getenv(EnvChromium); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	missing("no Chromium found (set " + EnvChromium + " or install it)")
	return ""
}

// startDev runs `plinth dev` on a free port and returns its base URL and the
// admin key its banner prints.
func startDev(t *testing.T) (base, key string) {
	t.Helper()
	d := runDev(t)
	baseMatch := regexp.MustCompile(`Listening on (http://127\.0\.0\.1:\d+)`).FindStringSubmatch(d.banner)
	keyMatch := regexp.MustCompile(`(?m)^\s+(plk_\S+)\s*$`).FindStringSubmatch(d.banner)
	if baseMatch == nil || keyMatch == nil {
		t.Fatalf("no URL or admin key in the banner:\n%s", d.banner)
	}
	return baseMatch[1], keyMatch[1]
}

// capabilityIDs lists the capabilities a catalog page holds, by anchor.
func capabilityIDs(page string) []string {
	var ids []string
	for _, m := range regexp.MustCompile(`<details class="cap" id="([^"]+)"`).FindAllStringSubmatch(page, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

const (
	signUpID = "plinth.customers.v1.CustomerService.SignUpCustomer"
	openID   = "plinth.ledger.v1.LedgerService.OpenLedgerAccount"
	createID = "plinth.access.v1.AccessService.CreatePrincipal"
)

// TestCatalogInChromium drives the catalog page of a real `plinth dev` in
// headless Chromium: the page lists every domain and capability, the
// search box narrows the list (and ?q= does without JavaScript), a
// capability's details show its fields and their sensitivity, and the
// curl examples of the capabilities that create things succeed when run
// as the page shows them.
func TestCatalogInChromium(t *testing.T) {
	chromium := browserOrSkip(t)
	base, key := startDev(t)

	// Without a browser, and without a key: the page and its ?q= filter.
	get := func(path string) string {
		t.Helper()
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s\n%s", path, res.Status, body)
		}
		return string(body)
	}
	all := capabilityIDs(get("/catalog"))
	if len(all) < 30 || !slices.Contains(all, signUpID) || !slices.Contains(all, openID) || !slices.Contains(all, createID) {
		t.Fatalf("GET /catalog lists %d capabilities: %v", len(all), all)
	}
	narrowed := capabilityIDs(get("/catalog?q=hold+ledger"))
	if len(narrowed) == 0 || len(narrowed) >= len(all) || !slices.Contains(narrowed, "plinth.ledger.v1.LedgerService.HoldFunds") || slices.Contains(narrowed, signUpID) {
		t.Errorf("GET /catalog?q=hold+ledger lists %v", narrowed)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // as root, in a container
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 1600),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelTimeout()

	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	visible := func() []string {
		t.Helper()
		ids, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
			`Array.from(document.querySelectorAll("details.cap")).filter(e => e.getClientRects().length > 0).map(e => e.id)`))
		must("listing the visible capabilities", err)
		return ids
	}

	start := time.Now()
	must("loading /catalog", chromedp.Do(ctx, chromedp.Navigate(base+"/catalog"), chromedp.WaitVisible(chromedp.ID("q"))))
	t.Logf("Chromium started and loaded the page in %s", time.Since(start).Round(time.Millisecond))

	// Every domain and capability is there.
	domains, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("section.domain")).map(s => s.id)`))
	must("listing the domains", err)
	for _, d := range []string{"domain-customers", "domain-ledger", "domain-access", "domain-audit"} {
		if !slices.Contains(domains, d) {
			t.Errorf("the page has no %s section (it has %v)", d, domains)
		}
	}
	if got := visible(); !slices.Equal(got, all) {
		t.Fatalf("the browser shows %d capabilities, the page has %d", len(got), len(all))
	}
	// The script ran (the page's Content-Security-Policy lets it): every
	// example got its copy button.
	buttons, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(".example button.copy").length`))
	must("counting copy buttons", err)
	if buttons != len(all) {
		t.Errorf("%d copy buttons for %d examples: did the script run?", buttons, len(all))
	}

	// Typing narrows the list as one types.
	must("typing a search", chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("q"), "hold")))
	_, err = chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("shown").textContent !== "`+strconv.Itoa(len(all))+`"`,
		chromedp.WithPollingTimeout(10*time.Second)))
	must("waiting for the list to narrow", err)
	got := visible()
	for _, want := range []string{"plinth.ledger.v1.LedgerService.HoldFunds", "plinth.ledger.v1.LedgerService.CaptureHold", "plinth.ledger.v1.LedgerService.ReleaseHold"} {
		if !slices.Contains(got, want) {
			t.Errorf("searching \"hold\" hides %s", want)
		}
	}
	if len(got) >= len(all) || slices.Contains(got, signUpID) {
		t.Errorf("searching \"hold\" shows %v", got)
	}
	shown, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("shown")))
	must("reading the count", err)
	if shown != strconv.Itoa(len(got)) {
		t.Errorf("the page says %s capabilities are shown; %d are", shown, len(got))
	}

	// Another search: one capability, and its details.
	_, err = chromedp.Run(ctx, chromedp.Evaluate[bool](`(q => { q.value = ""; return q.dispatchEvent(new Event("input")); })(document.getElementById("q"))`))
	must("clearing the search", err)
	must("searching SignUpCustomer", chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("q"), "SignUpCustomer")))
	_, err = chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("shown").textContent === "1"`,
		chromedp.WithPollingTimeout(10*time.Second)))
	must("waiting for one match", err)
	if got := visible(); !slices.Equal(got, []string{signUpID}) {
		t.Fatalf("searching SignUpCustomer shows %v", got)
	}
	must("opening SignUpCustomer's details", chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`[id="`+signUpID+`"] > summary`)),
		chromedp.WaitVisible(chromedp.CSS(`[id="`+signUpID+`"] table.fields tr[data-field="email"]`)),
	))
	type row struct {
		Field   string `json:"field"`
		Text    string `json:"text"`
		Visible bool   `json:"visible"`
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]row](`Array.from(document.querySelector('[id="`+signUpID+`"] table.fields').querySelectorAll("tbody tr")).map(r => ({field: r.dataset.field, text: r.innerText, visible: r.getClientRects().length > 0}))`))
	must("reading the request's fields", err)
	var fields []string
	for _, r := range rows {
		fields = append(fields, r.Field)
		if !r.Visible {
			t.Errorf("the request field %s is not visible", r.Field)
		}
		if r.Field == "email" && (!strings.Contains(r.Text, "PII") || !strings.Contains(r.Text, "email") || !strings.Contains(r.Text, "required")) {
			t.Errorf("the email row does not show its PII badge and rules: %q", r.Text)
		}
		if r.Field == "name" && !strings.Contains(r.Text, "1..200 chars") {
			t.Errorf("the name row does not show its length rule: %q", r.Text)
		}
	}
	if !slices.Equal(fields, []string{"name", "email", "phone", "dateOfBirth", "address", "taxId"}) {
		t.Errorf("SignUpCustomer's request fields: %v", fields)
	}
	if path := os.Getenv(EnvCatalogScreenshot); path != "" {
		shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		must("taking a screenshot", err)
		must("saving the screenshot", os.WriteFile(path, shot, 0o644))
	}

	// The curl examples work as the page shows them. A link to a
	// capability opens its details.
	for _, tc := range []struct {
		id, resource, prefix string
	}{
		{signUpID, "customer", "cus_"},
		{openID, "account", "lac_"},
		{createID, "principal", "prn_"},
	} {
		must("following the link to "+tc.id, chromedp.Do(ctx,
			// From elsewhere: a change of fragment alone loads nothing.
			chromedp.Navigate("about:blank"),
			chromedp.Navigate(base+"/catalog#"+tc.id),
			chromedp.WaitVisible(chromedp.CSS(`[id="`+tc.id+`"] pre code.curl`)),
		))
		command, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`[id="`+tc.id+`"] pre code.curl`)))
		must("reading the curl example", err)
		if !strings.HasPrefix(command, "curl ") || !strings.Contains(command, base+"/") {
			t.Fatalf("%s: the example is not a curl command for %s:\n%s", tc.id, base, command)
		}
		// Exactly as shown. A Connect error is a JSON object with a code
		// (and a status other than 200); success is the response message.
		cmd := exec.Command("sh", "-c", command)
		cmd.Env = append(os.Environ(), "PLINTH_API_KEY="+key)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: the example failed (%v):\n%s\n%s", tc.id, err, command, out)
		}
		var answer map[string]json.RawMessage
		var resource struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(out, &answer) != nil || answer["code"] != nil ||
			json.Unmarshal(answer[tc.resource], &resource) != nil || !strings.HasPrefix(resource.ID, tc.prefix) {
			t.Errorf("%s: the example answered %s, want a %s with an id %s…:\n%s", tc.id, out, tc.resource, tc.prefix, command)
		}
	}
}
