// Package catalog serves the capability catalog: one HTML page, built from
// the contracts, that lists every capability the gateway serves, grouped by
// domain, with its policy (owner, scope, whether it mutates, stability),
// its request and response with each field's type, validation rules and
// sensitivity class, its HTTP routes (the Connect procedure and the REST
// paths of its google.api.http rule), and curl examples that work against
// the server that serves the page.
//
// The page needs nothing from the internet (its style and its one small
// script are inline, and its Content-Security-Policy forbids anything
// else), and reads fully without JavaScript: the search box is a GET form
// (?q=) that the server filters by, and the script only filters as one
// types and adds copy buttons.
//
// Comments come from contracts.binpb, a descriptor set with source info
// that scripts/generate.sh writes beside this file, since the descriptors
// compiled into Go carry none.
package catalog

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/reflect/protoreflect"

	"plinth.dev/plinth/internal/sensitive"
	optionsv1 "plinth.dev/plinth/sdk/go/gen/plinth/options/v1"
)

// Entry is one capability as the gateway knows it (gateway.Capability,
// without the import cycle).
type Entry struct {
	// Procedure is the Connect procedure,
	// e.g. "/plinth.customers.v1.CustomerService/SignUpCustomer".
	Procedure string
	// Domain is the registry name of the domain that serves it.
	Domain    string
	Method    protoreflect.MethodDescriptor
	Owner     string
	Scope     string
	Mutates   bool
	Stability optionsv1.Stability
	Summary   string
	// Routes are further HTTP routes that serve the capability besides its
	// procedure: its REST paths (HTTPRoutes), when the gateway serves them.
	// The procedure's own route is always listed first.
	Routes []Route
}

// Route is an HTTP method and path that serves a capability.
type Route struct {
	Method string // "POST"
	Path   string // "/plinth.customers.v1.CustomerService/SignUpCustomer", "/v1/customers/{customer_id}"
	// Body is, for a REST route, what the JSON body holds: "*" the whole
	// request (less the fields the path names), "" nothing (the fields
	// not in the path go in the query string), or the name of one field.
	Body string
	Note string // e.g. "Connect: JSON or protobuf; also gRPC and gRPC-Web"
}

// Catalog is the page's model: every capability by domain.
type Catalog struct {
	Domains []*Domain
	Total   int
}

// Domain is the capabilities one domain serves, and the types they use.
type Domain struct {
	Name         string // the registry name, "customers"
	ID           string // the anchor, "domain-customers"
	Service      string // "plinth.customers.v1.CustomerService"
	Overview     []Block
	Capabilities []*Capability
	// Types are the messages and enums the capabilities' requests and
	// responses use, other than the requests and responses themselves,
	// each defined once on the page.
	Types []*Type
}

// Capability is one capability as the page shows it.
type Capability struct {
	ID          string // the anchor: the method's full name
	Name        string // "SignUpCustomer"
	FullName    string // "plinth.customers.v1.CustomerService.SignUpCustomer"
	Procedure   string
	Domain      string
	Summary     string
	Description []Block // the rpc's comment, or the summary
	Owner       string
	Scope       string
	Mutates     bool
	Stability   string // "stable", "preview", "deprecated"
	Routes      []Route
	Request     *Type
	Response    *Type
	// Classes are the sensitivity classes that the request or the
	// response can hold, at any depth: "PII", "PCI", "PHI", "SECRET".
	Classes []string
	// Example is a request that passes validation; nil, with ExampleErr
	// saying why, if none could be made.
	Example    *Example
	ExampleErr string
	// Search is what the search box matches, lower case.
	Search string
}

// Type is a message or an enum.
type Type struct {
	ID          string // the anchor, "type-plinth.customers.v1.Customer"
	FullName    string
	Name        string
	Kind        string // "message" or "enum"
	Description []Block
	Fields      []*Field
	Rules       []Rule // rules of the message as a whole
	Values      []EnumValue
}

// Field is a field of a message.
type Field struct {
	Name     string // "date_of_birth"
	JSONName string // "dateOfBirth"
	TypeName string // "string", "Customer", "timestamp"
	TypeRef  string // the anchor of the type's definition, if on the page
	TypeNote string // how JSON writes it, if not plain
	Repeated bool
	MapKey   string // the key type of a map field
	// Optional is a proto3 optional field: unset differs from empty.
	Optional bool
	// Required: the request does not validate without it.
	Required    bool
	Sensitivity string // "PII", ... or ""
	Rules       []Rule
	Description []Block
}

// EnumValue is a value of an enum.
type EnumValue struct {
	Name        string
	Number      int32
	Description []Block
}

// Build makes the catalog's model from the capabilities, in their order,
// grouped by domain in the order the domains first appear.
func Build(entries []Entry) (*Catalog, error) {
	comments, err := EmbeddedComments()
	if err != nil {
		return nil, err
	}
	v, err := protovalidate.New()
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	b := &builder{
		comments: comments,
		ex:       &exampler{v: v, comments: comments},
		types:    map[protoreflect.FullName]bool{},
		domains:  map[string]*Domain{},
	}
	cat := &Catalog{Total: len(entries)}
	for _, e := range entries {
		d := b.domains[e.Domain]
		if d == nil {
			svc := e.Method.Parent().(protoreflect.ServiceDescriptor)
			d = &Domain{
				Name:     e.Domain,
				ID:       "domain-" + e.Domain,
				Service:  string(svc.FullName()),
				Overview: paragraphs(comments.Package(svc.ParentFile().Path())),
			}
			b.domains[e.Domain] = d
			cat.Domains = append(cat.Domains, d)
		}
		c, err := b.capability(e, d)
		if err != nil {
			return nil, err
		}
		d.Capabilities = append(d.Capabilities, c)
	}
	return cat, nil
}

type builder struct {
	comments *Comments
	ex       *exampler
	types    map[protoreflect.FullName]bool // defined on the page already
	domains  map[string]*Domain
}

var stabilities = map[optionsv1.Stability]string{
	optionsv1.Stability_STABILITY_STABLE:     "stable",
	optionsv1.Stability_STABILITY_PREVIEW:    "preview",
	optionsv1.Stability_STABILITY_DEPRECATED: "deprecated",
}

func (b *builder) capability(e Entry, d *Domain) (*Capability, error) {
	m := e.Method
	c := &Capability{
		ID:        string(m.FullName()),
		Name:      string(m.Name()),
		FullName:  string(m.FullName()),
		Procedure: e.Procedure,
		Domain:    e.Domain,
		Summary:   e.Summary,
		Owner:     e.Owner,
		Scope:     e.Scope,
		Mutates:   e.Mutates,
		Stability: stabilities[e.Stability],
		Routes: append([]Route{{
			Method: http.MethodPost,
			Path:   e.Procedure,
			Note:   "Connect: JSON or binary protobuf; the same path speaks gRPC and gRPC-Web",
		}}, e.Routes...),
	}
	if c.Stability == "" {
		c.Stability = strings.ToLower(strings.TrimPrefix(e.Stability.String(), "STABILITY_"))
	}
	c.Description = paragraphs(b.comments.Of(c.FullName))
	if len(c.Description) == 0 {
		c.Description = []Block{{Text: e.Summary}}
	}
	var err error
	if c.Request, err = b.message(m.Input(), d); err != nil {
		return nil, err
	}
	if c.Response, err = b.message(m.Output(), d); err != nil {
		return nil, err
	}
	classes := map[string]bool{}
	collectClasses(m.Input(), classes, map[protoreflect.FullName]bool{})
	collectClasses(m.Output(), classes, map[protoreflect.FullName]bool{})
	for _, name := range []string{"PII", "PCI", "PHI", "SECRET"} {
		if classes[name] {
			c.Classes = append(c.Classes, name)
		}
	}
	if ex, err := b.ex.Example(m.Input()); err != nil {
		c.ExampleErr = err.Error()
	} else {
		c.Example = ex
	}
	c.Search = searchText(c)
	return c, nil
}

// message describes a request or a response, and defines in d every type
// its fields use that the page does not define yet.
func (b *builder) message(md protoreflect.MessageDescriptor, d *Domain) (*Type, error) {
	t := &Type{
		ID:          "type-" + string(md.FullName()),
		FullName:    string(md.FullName()),
		Name:        string(md.Name()),
		Kind:        "message",
		Description: paragraphs(b.comments.Of(string(md.FullName()))),
		Rules:       messageRules(md),
	}
	required := b.requiredFields(md)
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		f := &Field{
			Name:        string(fd.Name()),
			JSONName:    fd.JSONName(),
			Repeated:    fd.IsList(),
			Optional:    fd.HasOptionalKeyword() && fd.Message() == nil,
			Required:    required[fd.Number()],
			Rules:       fieldRules(fd, fieldRulesOf(fd)),
			Description: paragraphs(b.comments.Of(string(fd.FullName()))),
		}
		if class := sensitive.ClassOf(fd); class != optionsv1.Sensitivity_SENSITIVITY_UNSPECIFIED {
			f.Sensitivity = strings.TrimPrefix(class.String(), "SENSITIVITY_")
		}
		elem := fd
		if fd.IsMap() {
			f.MapKey = fd.MapKey().Kind().String()
			elem = fd.MapValue()
		}
		switch {
		case elem.Message() != nil:
			f.TypeName, f.TypeNote = wellKnownType(elem.Message())
			if f.TypeName == "" {
				f.TypeName = string(elem.Message().Name())
				f.TypeRef = "type-" + string(elem.Message().FullName())
				if err := b.define(elem.Message(), d); err != nil {
					return nil, err
				}
			}
		case elem.Enum() != nil:
			f.TypeName = string(elem.Enum().Name())
			f.TypeRef = "type-" + string(elem.Enum().FullName())
			f.TypeNote = "its value's name as a string"
			b.defineEnum(elem.Enum(), d)
		default:
			f.TypeName = elem.Kind().String()
			switch elem.Kind() {
			case protoreflect.Int64Kind, protoreflect.Uint64Kind, protoreflect.Sint64Kind,
				protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind:
				f.TypeNote = "a JSON string or number"
			case protoreflect.BytesKind:
				f.TypeNote = "base64"
			}
		}
		t.Fields = append(t.Fields, f)
	}
	return t, nil
}

// define adds a message type to d's types, once for the page, and the
// types its fields use.
func (b *builder) define(md protoreflect.MessageDescriptor, d *Domain) error {
	if b.types[md.FullName()] {
		return nil
	}
	b.types[md.FullName()] = true
	// Keep its place before the types its fields use, which describing
	// it defines.
	i := len(d.Types)
	d.Types = append(d.Types, nil)
	t, err := b.message(md, d)
	if err != nil {
		return err
	}
	d.Types[i] = t
	return nil
}

func (b *builder) defineEnum(ed protoreflect.EnumDescriptor, d *Domain) {
	if b.types[ed.FullName()] {
		return
	}
	b.types[ed.FullName()] = true
	t := &Type{
		ID:          "type-" + string(ed.FullName()),
		FullName:    string(ed.FullName()),
		Name:        string(ed.Name()),
		Kind:        "enum",
		Description: paragraphs(b.comments.Of(string(ed.FullName()))),
	}
	values := ed.Values()
	for i := range values.Len() {
		v := values.Get(i)
		t.Values = append(t.Values, EnumValue{
			Name:        string(v.Name()),
			Number:      int32(v.Number()),
			Description: paragraphs(b.comments.Of(string(ed.FullName()) + "." + string(v.Name()))),
		})
	}
	d.Types = append(d.Types, t)
}

// requiredFields returns the fields of md whose empty value breaks a rule.
func (b *builder) requiredFields(md protoreflect.MessageDescriptor) map[protoreflect.FieldNumber]bool {
	out := map[protoreflect.FieldNumber]bool{}
	viols, err := b.ex.violations(newMessage(md))
	if err != nil {
		return out
	}
	for _, n := range viols {
		if n != 0 {
			out[n] = true
		}
	}
	return out
}

// wellKnownType names a well-known message type as JSON writes it, or
// returns "" for any other.
func wellKnownType(md protoreflect.MessageDescriptor) (name, note string) {
	switch md.FullName() {
	case "google.protobuf.Timestamp":
		return "timestamp", "an RFC 3339 string"
	case "google.protobuf.Duration":
		return "duration", `seconds with an "s", e.g. "3600s"`
	}
	if md.ParentFile().Package() == "google.protobuf" {
		return string(md.FullName()), ""
	}
	return "", ""
}

// collectClasses gathers the sensitivity classes a message can hold.
func collectClasses(md protoreflect.MessageDescriptor, out map[string]bool, seen map[protoreflect.FullName]bool) {
	if seen[md.FullName()] {
		return
	}
	seen[md.FullName()] = true
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if class := sensitive.ClassOf(fd); class != optionsv1.Sensitivity_SENSITIVITY_UNSPECIFIED {
			out[strings.TrimPrefix(class.String(), "SENSITIVITY_")] = true
		}
		if fd.IsMap() {
			fd = fd.MapValue()
		}
		if fd.Message() != nil {
			collectClasses(fd.Message(), out, seen)
		}
	}
}

// searchText is what a capability is found by: its names, domain, policy,
// summary and comment, sensitivity classes and request fields.
func searchText(c *Capability) string {
	parts := []string{c.Name, c.FullName, c.Domain, c.Summary, c.Owner, c.Scope, c.Stability}
	for _, r := range c.Routes[1:] {
		parts = append(parts, r.Path)
	}
	for _, bl := range c.Description {
		parts = append(parts, bl.Text)
	}
	parts = append(parts, c.Classes...)
	if c.Mutates {
		parts = append(parts, "mutates")
	} else {
		parts = append(parts, "read-only")
	}
	for _, f := range c.Request.Fields {
		parts = append(parts, f.Name, f.JSONName)
	}
	return strings.ToLower(strings.Join(strings.Fields(strings.Join(parts, " ")), " "))
}

// matches says whether a capability matches a query: every word of it
// appears in the capability's search text. The page's script does the same.
func matches(c *Capability, terms []string) bool {
	for _, t := range terms {
		if !strings.Contains(c.Search, t) {
			return false
		}
	}
	return true
}

// Handler serves the catalog page at GET /catalog. The model is built on
// the first request, so that starting the gateway costs nothing for it.
type Handler struct {
	entries []Entry
	once    sync.Once
	cat     *Catalog
	err     error
}

// New returns the catalog's handler for these capabilities.
func New(entries []Entry) *Handler {
	return &Handler{entries: slices.Clone(entries)}
}

// Catalog returns the page's model, building it on first use.
func (h *Handler) Catalog() (*Catalog, error) {
	h.once.Do(func() { h.cat, h.err = Build(h.entries) })
	return h.cat, h.err
}

var (
	//go:embed catalog.html
	pageHTML string
	//go:embed catalog.css
	pageCSS string
	//go:embed catalog.js
	pageJS string

	page = template.Must(template.New("catalog").Funcs(template.FuncMap{
		"curl":     Curl,
		"restcurl": RESTCurl,
		"css":      func() template.CSS { return template.CSS(pageCSS) },
		"js":       func() template.JS { return template.JS(pageJS) },
	}).Parse(pageHTML))

	// contentSecurityPolicy allows the page's own inline style and script
	// and nothing else: the page loads nothing, from anywhere.
	contentSecurityPolicy = fmt.Sprintf("default-src 'none'; style-src '%s'; script-src '%s'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
		sha256Source(pageCSS), sha256Source(pageJS))
)

func sha256Source(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

// view is what one request of the page shows.
type view struct {
	Base    string // the server's base URL, for the curl examples
	Query   string
	Shown   int
	Total   int
	Open    bool // few enough matches to show them open
	Domains []domainView
}

type domainView struct {
	*Domain
	Capabilities []*Capability // those that match the query
}

// maxQuery bounds the search query, in bytes.
const maxQuery = 200

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cat, err := h.Catalog()
	if err != nil {
		http.Error(w, "the catalog could not be built: "+err.Error(), http.StatusInternalServerError)
		return
	}
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if len(q) > maxQuery {
		q = q[:maxQuery]
		for !utf8.ValidString(q) {
			q = q[:len(q)-1]
		}
	}
	v := view{Base: BaseURL(r), Query: q, Total: cat.Total}
	terms := strings.Fields(strings.ToLower(q))
	for _, d := range cat.Domains {
		dv := domainView{Domain: d}
		for _, c := range d.Capabilities {
			if matches(c, terms) {
				dv.Capabilities = append(dv.Capabilities, c)
			}
		}
		if len(dv.Capabilities) > 0 {
			v.Domains = append(v.Domains, dv)
			v.Shown += len(dv.Capabilities)
		}
	}
	v.Open = q != "" && v.Shown <= 3
	var buf bytes.Buffer
	if err := page.Execute(&buf, v); err != nil {
		http.Error(w, "the catalog could not be rendered: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h2 := w.Header()
	h2.Set("Content-Type", "text/html; charset=utf-8")
	h2.Set("Content-Security-Policy", contentSecurityPolicy)
	h2.Set("X-Content-Type-Options", "nosniff")
	h2.Set("Referrer-Policy", "no-referrer")
	// The curl examples name the host the page was asked for.
	h2.Set("Cache-Control", "no-cache")
	h2.Set("Vary", "Host, X-Forwarded-Proto")
	w.Write(buf.Bytes())
}

// hostPattern is what a Host header may be for the page to repeat it in a
// shell command: a name or an IP literal, and a port.
var hostPattern = regexp.MustCompile(`^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$`)

// BaseURL returns the URL the server was reached at: the request's scheme
// (https when TLS, or when a proxy says so in X-Forwarded-Proto) and Host.
func BaseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	} else if p := strings.ToLower(r.Header.Get("X-Forwarded-Proto")); p == "https" || p == "http" {
		scheme = p
	}
	host := r.Host
	if !hostPattern.MatchString(host) {
		host = "127.0.0.1:8080"
	}
	return scheme + "://" + host
}

// IdempotencyKeyExpr is the Idempotency-Key the curl examples send: a new
// one each time the command runs (the time and the shell's process id), so
// that running an edited example again does not meet the first run's key.
// To retry one call safely, send the same key again.
const IdempotencyKeyExpr = `catalog-$(date +%s)-$$`

// Curl returns the curl command that calls c on the server at base, with
// the API key from $PLINTH_API_KEY: a command for sh, bash or zsh.
func Curl(base string, c *Capability) string {
	body := "{}"
	if c.Example != nil {
		body = c.Example.Body
	}
	var b strings.Builder
	fmt.Fprintf(&b, "curl -sS -X POST %s \\\n", shellQuote(base+c.Procedure))
	b.WriteString("  -H \"Authorization: Bearer $PLINTH_API_KEY\" \\\n")
	b.WriteString("  -H 'Content-Type: application/json' \\\n")
	if c.Mutates {
		fmt.Fprintf(&b, "  -H \"Idempotency-Key: %s\" \\\n", IdempotencyKeyExpr)
	}
	fmt.Fprintf(&b, "  -d %s", shellQuote(body))
	return b.String()
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
