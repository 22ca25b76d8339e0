package catalog

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// HTTPRoutes returns the REST routes of a method, as its contract's
// google.api.http rule declares them: the rule, then its additional
// bindings. A method without a rule has none.
func HTTPRoutes(md protoreflect.MethodDescriptor) []Route {
	if !proto.HasExtension(md.Options(), annotations.E_Http) {
		return nil
	}
	rule, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
	var out []Route
	for _, r := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
		method, path := RuleMethodAndPath(r)
		if path == "" {
			continue
		}
		note := "REST: the path and query string hold the request's fields; JSON answer"
		switch r.GetBody() {
		case "":
		case "*":
			note = "REST: the request as a JSON body, less what the path names; JSON answer"
		default:
			note = "REST: the request's " + r.GetBody() + " as a JSON body; JSON answer"
		}
		out = append(out, Route{Method: method, Path: path, Body: r.GetBody(), Note: note})
	}
	return out
}

// RuleMethodAndPath returns the HTTP method and path template of a
// google.api.http rule, or "" for a rule with neither.
func RuleMethodAndPath(r *annotations.HttpRule) (method, path string) {
	switch p := r.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		return http.MethodGet, p.Get
	case *annotations.HttpRule_Put:
		return http.MethodPut, p.Put
	case *annotations.HttpRule_Post:
		return http.MethodPost, p.Post
	case *annotations.HttpRule_Delete:
		return http.MethodDelete, p.Delete
	case *annotations.HttpRule_Patch:
		return http.MethodPatch, p.Patch
	case *annotations.HttpRule_Custom:
		return p.Custom.GetKind(), p.Custom.GetPath()
	}
	return "", ""
}

// pathVariable is a variable of a path template: {field} or
// {field=pattern}.
var pathVariable = regexp.MustCompile(`\{([^}=]+)(=[^}]*)?\}`)

// RESTCurl returns the curl command that makes c's example call through
// its first REST route, with the API key from $PLINTH_API_KEY; "" if c has
// no REST route or no example, or its example does not fit the route
// (a field the path names is not in the example, a message in a query).
func RESTCurl(base string, c *Capability) string {
	if c.Example == nil || len(c.Routes) < 2 {
		return ""
	}
	route := c.Routes[1]
	var values map[string]json.RawMessage
	if err := json.Unmarshal([]byte(c.Example.Body), &values); err != nil {
		return ""
	}
	byName := map[string]*Field{}
	for _, f := range c.Request.Fields {
		byName[f.Name] = f
	}

	// The fields the path names come out of the example.
	ok := true
	path := pathVariable.ReplaceAllStringFunc(route.Path, func(v string) string {
		m := pathVariable.FindStringSubmatch(v)
		f := byName[m[1]]
		if m[2] != "" || f == nil {
			ok = false
			return v
		}
		raw, found := values[f.JSONName]
		if !found {
			ok = false
			return v
		}
		delete(values, f.JSONName)
		return url.PathEscape(scalar(raw))
	})
	if !ok {
		return ""
	}

	// The others go in the body or the query string.
	var body string
	query := url.Values{}
	switch route.Body {
	case "*":
		var b strings.Builder
		b.WriteByte('{')
		for _, f := range c.Request.Fields {
			if raw, found := values[f.JSONName]; found {
				if b.Len() > 1 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, "%q:%s", f.JSONName, raw)
			}
		}
		b.WriteByte('}')
		body = b.String()
	default:
		if route.Body != "" {
			f := byName[route.Body]
			if f == nil {
				return ""
			}
			body = "{}"
			if raw, found := values[f.JSONName]; found {
				body = string(raw)
				delete(values, f.JSONName)
			}
		}
		for name, raw := range values {
			if len(raw) > 0 && (raw[0] == '{' || raw[0] == '[') {
				return ""
			}
			query.Set(name, scalar(raw))
		}
	}

	u := base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "curl -sS -X %s %s \\\n", route.Method, shellQuote(u))
	b.WriteString("  -H \"Authorization: Bearer $PLINTH_API_KEY\"")
	if body != "" {
		b.WriteString(" \\\n  -H 'Content-Type: application/json'")
	}
	if c.Mutates {
		fmt.Fprintf(&b, " \\\n  -H \"Idempotency-Key: %s\"", IdempotencyKeyExpr)
	}
	if body != "" {
		fmt.Fprintf(&b, " \\\n  -d %s", shellQuote(body))
	}
	return b.String()
}

// scalar returns a JSON string's text, or any other JSON value as written.
func scalar(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}
