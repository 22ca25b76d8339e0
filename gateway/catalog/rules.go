package catalog

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Rule is one validation rule, said for a reader: Text, and Code when the
// rule has a literal worth setting apart (a pattern, a CEL expression).
type Rule struct {
	Text string
	Code string
}

// fieldRulesOf returns the buf.validate rules of a field, or nil.
func fieldRulesOf(fd protoreflect.FieldDescriptor) *validate.FieldRules {
	r, _ := proto.GetExtension(fd.Options(), validate.E_Field).(*validate.FieldRules)
	return r
}

// messageRules renders the rules of a message as a whole: CEL rules and
// oneof rules that span fields.
func messageRules(md protoreflect.MessageDescriptor) []Rule {
	var out []Rule
	if r, _ := proto.GetExtension(md.Options(), validate.E_Message).(*validate.MessageRules); r != nil {
		for _, o := range r.GetOneof() {
			fields := make([]string, len(o.GetFields()))
			for i, name := range o.GetFields() {
				fields[i] = jsonNameOf(md, name)
			}
			what := "at most one of"
			if o.GetRequired() {
				what = "exactly one of"
			}
			out = append(out, Rule{Text: what + " " + strings.Join(fields, ", ")})
		}
		out = append(out, celRules(r.GetCel(), r.GetCelExpression())...)
	}
	oneofs := md.Oneofs()
	for i := range oneofs.Len() {
		o := oneofs.Get(i)
		if o.IsSynthetic() {
			continue
		}
		if r, _ := proto.GetExtension(o.Options(), validate.E_Oneof).(*validate.OneofRules); r.GetRequired() {
			var fields []string
			for j := range o.Fields().Len() {
				fields = append(fields, o.Fields().Get(j).JSONName())
			}
			out = append(out, Rule{Text: "exactly one of " + strings.Join(fields, ", ")})
		}
	}
	return out
}

func jsonNameOf(md protoreflect.MessageDescriptor, name string) string {
	if fd := md.Fields().ByName(protoreflect.Name(name)); fd != nil {
		return fd.JSONName()
	}
	return name
}

func celRules(rules []*validate.Rule, expressions []string) []Rule {
	var out []Rule
	for _, c := range rules {
		text := c.GetMessage()
		if text == "" {
			text = "must hold:"
		}
		out = append(out, Rule{Text: text, Code: c.GetExpression()})
	}
	for _, e := range expressions {
		out = append(out, Rule{Text: "must hold:", Code: e})
	}
	return out
}

// fieldRules renders the rules of a field. fd gives enum value names; it
// may be nil for the items of a repeated field.
func fieldRules(fd protoreflect.FieldDescriptor, r *validate.FieldRules) []Rule {
	if r == nil {
		return nil
	}
	var out []Rule
	if r.GetRequired() {
		out = append(out, Rule{Text: "required"})
	}
	switch r.GetIgnore() {
	case validate.Ignore_IGNORE_IF_ZERO_VALUE:
		out = append(out, Rule{Text: "checked only when set"})
	case validate.Ignore_IGNORE_ALWAYS:
		out = append(out, Rule{Text: "not checked"})
	}
	m := r.ProtoReflect()
	if typ := m.Descriptor().Oneofs().ByName("type"); typ != nil {
		if which := m.WhichOneof(typ); which != nil {
			out = append(out, typedRules(fd, string(which.Name()), m.Get(which).Message())...)
		}
	}
	return append(out, celRules(r.GetCel(), r.GetCelExpression())...)
}

// typedRules renders the rules of one type (StringRules, Int64Rules, ...).
func typedRules(fd protoreflect.FieldDescriptor, kind string, m protoreflect.Message) []Rule {
	var (
		out            []Rule
		lower, upper   string // "≥ 1", "< 10"
		lowerV, upperV string // the bounds alone, for "1..10"
		inclusive      [2]bool
		minLen, maxLen = int64(-1), int64(-1)
		lenUnit        string
	)
	format := func(fd2 protoreflect.FieldDescriptor, v protoreflect.Value) string {
		return formatValue(fd, kind, fd2, v)
	}
	// In the order the rules are declared, for a stable page.
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		rf := fields.Get(i)
		if !m.Has(rf) {
			continue
		}
		v := m.Get(rf)
		name := string(rf.Name())
		switch name {
		case "example":
			// Examples are not rules; the example request uses them.
		case "gt", "gte":
			lowerV, inclusive[0] = format(rf, v), name == "gte"
			lower = map[bool]string{true: "≥ ", false: "> "}[inclusive[0]] + lowerV
		case "lt", "lte":
			upperV, inclusive[1] = format(rf, v), name == "lte"
			upper = map[bool]string{true: "≤ ", false: "< "}[inclusive[1]] + upperV
		case "const":
			out = append(out, Rule{Text: "exactly", Code: format(rf, v)})
		case "in", "not_in":
			var vals []string
			for i := range v.List().Len() {
				vals = append(vals, formatValue(fd, kind, rf, v.List().Get(i)))
			}
			text := "one of"
			if name == "not_in" {
				text = "not"
			}
			out = append(out, Rule{Text: text, Code: strings.Join(vals, ", ")})
		case "finite":
			out = append(out, Rule{Text: "finite (not NaN or infinite)"})
		case "min_len", "min_bytes", "min_items", "min_pairs":
			minLen = int64(v.Uint())
			lenUnit = unitOf(name)
		case "max_len", "max_bytes", "max_items", "max_pairs":
			maxLen = int64(v.Uint())
			lenUnit = unitOf(name)
		case "len", "len_bytes":
			out = append(out, Rule{Text: fmt.Sprintf("exactly %d %s", v.Uint(), plural(unitOf(name), int64(v.Uint())))})
		case "pattern":
			out = append(out, Rule{Text: "matches", Code: v.String()})
		case "prefix":
			out = append(out, Rule{Text: "starts with", Code: fmt.Sprint(v.Interface())})
		case "suffix":
			out = append(out, Rule{Text: "ends with", Code: fmt.Sprint(v.Interface())})
		case "contains":
			out = append(out, Rule{Text: "contains", Code: fmt.Sprint(v.Interface())})
		case "not_contains":
			out = append(out, Rule{Text: "does not contain", Code: fmt.Sprint(v.Interface())})
		case "defined_only":
			if v.Bool() {
				out = append(out, Rule{Text: "a value the enum defines"})
			}
		case "unique":
			if v.Bool() {
				out = append(out, Rule{Text: "no duplicates"})
			}
		case "items", "keys", "values":
			sub, _ := v.Message().Interface().(*validate.FieldRules)
			var item protoreflect.FieldDescriptor
			if name == "items" {
				item = fd
			} else if fd != nil && fd.IsMap() {
				item = map[string]protoreflect.FieldDescriptor{"keys": fd.MapKey(), "values": fd.MapValue()}[name]
			}
			for _, r := range fieldRules(item, sub) {
				out = append(out, Rule{Text: map[string]string{"items": "each item: ", "keys": "each key: ", "values": "each value: "}[name] + r.Text, Code: r.Code})
			}
		case "gt_now":
			out = append(out, Rule{Text: "in the future"})
		case "lt_now":
			out = append(out, Rule{Text: "in the past"})
		case "within":
			out = append(out, Rule{Text: "within " + format(rf, v) + " of now"})
		case "strict":
			// Only qualifies well_known_regex.
		case "well_known_regex":
			what := map[validate.KnownRegex]string{
				validate.KnownRegex_KNOWN_REGEX_HTTP_HEADER_NAME:  "an HTTP header name",
				validate.KnownRegex_KNOWN_REGEX_HTTP_HEADER_VALUE: "an HTTP header value",
			}[validate.KnownRegex(v.Enum())]
			if what != "" {
				out = append(out, Rule{Text: what})
			}
		default:
			if what, ok := wellKnown[name]; ok {
				if v.Bool() {
					out = append(out, Rule{Text: what})
				}
				break
			}
			// A rule this page does not know how to say: say it as is.
			out = append(out, Rule{Text: strings.ReplaceAll(name, "_", " "), Code: format(rf, v)})
		}
	}
	switch {
	case minLen >= 0 && maxLen >= 0:
		out = append([]Rule{{Text: fmt.Sprintf("%d..%d %s", minLen, maxLen, plural(lenUnit, maxLen))}}, out...)
	case minLen >= 0:
		out = append([]Rule{{Text: fmt.Sprintf("at least %d %s", minLen, plural(lenUnit, minLen))}}, out...)
	case maxLen >= 0:
		out = append([]Rule{{Text: fmt.Sprintf("at most %d %s", maxLen, plural(lenUnit, maxLen))}}, out...)
	}
	switch {
	case lower != "" && upper != "" && inclusive[0] && inclusive[1]:
		out = append([]Rule{{Text: lowerV + ".." + upperV}}, out...)
	case lower != "" && upper != "":
		out = append([]Rule{{Text: lower + " and " + upper}}, out...)
	case lower != "":
		out = append([]Rule{{Text: lower}}, out...)
	case upper != "":
		out = append([]Rule{{Text: upper}}, out...)
	}
	return out
}

// wellKnown names the string (and bytes) formats buf.validate checks.
var wellKnown = map[string]string{
	"email":               "email",
	"hostname":            "hostname",
	"ip":                  "IP address",
	"ipv4":                "IPv4 address",
	"ipv6":                "IPv6 address",
	"uri":                 "absolute URI",
	"uri_ref":             "URI reference",
	"address":             "hostname or IP address",
	"uuid":                "UUID",
	"tuuid":               "UUID without dashes",
	"ulid":                "ULID",
	"ip_with_prefixlen":   "IP address with prefix length",
	"ipv4_with_prefixlen": "IPv4 address with prefix length",
	"ipv6_with_prefixlen": "IPv6 address with prefix length",
	"ip_prefix":           "IP prefix",
	"ipv4_prefix":         "IPv4 prefix",
	"ipv6_prefix":         "IPv6 prefix",
	"host_and_port":       "host and port",
}

func unitOf(rule string) string {
	switch {
	case strings.HasSuffix(rule, "_bytes"):
		return "bytes"
	case strings.HasSuffix(rule, "_items"):
		return "items"
	case strings.HasSuffix(rule, "_pairs"):
		return "entries"
	default:
		return "chars"
	}
}

// plural makes "chars" "char" for one.
func plural(unit string, n int64) string {
	if n == 1 {
		switch unit {
		case "entries":
			return "entry"
		default:
			return strings.TrimSuffix(unit, "s")
		}
	}
	return unit
}

// formatValue says a rule's value: an enum number by its name, a duration
// as "1s" or "30 days", a timestamp in RFC 3339, a string quoted.
func formatValue(fd protoreflect.FieldDescriptor, kind string, rf protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch {
	case kind == "enum" && fd != nil && fd.Enum() != nil && rf.Kind() == protoreflect.Int32Kind:
		if ev := fd.Enum().Values().ByNumber(protoreflect.EnumNumber(v.Int())); ev != nil {
			return string(ev.Name())
		}
		return strconv.FormatInt(v.Int(), 10)
	case rf.Message() != nil && rf.Message().FullName() == "google.protobuf.Duration":
		m := v.Message()
		d := time.Duration(m.Get(m.Descriptor().Fields().ByName("seconds")).Int())*time.Second +
			time.Duration(m.Get(m.Descriptor().Fields().ByName("nanos")).Int())
		return formatDuration(d)
	case rf.Message() != nil && rf.Message().FullName() == "google.protobuf.Timestamp":
		m := v.Message()
		t := time.Unix(m.Get(m.Descriptor().Fields().ByName("seconds")).Int(), m.Get(m.Descriptor().Fields().ByName("nanos")).Int())
		return t.UTC().Format(time.RFC3339Nano)
	case rf.Kind() == protoreflect.StringKind:
		return strconv.Quote(v.String())
	case rf.Kind() == protoreflect.BytesKind:
		return fmt.Sprintf("%q", v.Bytes())
	default:
		return fmt.Sprint(v.Interface())
	}
}

// formatDuration says a duration in the largest whole unit: "30 days",
// "2h", "1s", or Go's form ("1.5s") when no unit divides it.
func formatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d%(24*time.Hour) == 0:
		n := int64(d / (24 * time.Hour))
		if n == 1 {
			return "1 day"
		}
		return fmt.Sprintf("%d days", n)
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", int64(d/time.Hour))
	case d%time.Minute == 0:
		return fmt.Sprintf("%dmin", int64(d/time.Minute))
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", int64(d/time.Second))
	default:
		return d.String()
	}
}
