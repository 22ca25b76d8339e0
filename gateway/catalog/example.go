package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Example is a request body that passes the contract's validation rules.
type Example struct {
	// Body is the request as Connect JSON.
	Body string
	// Placeholders are the values that stand for the id of a resource that
	// must exist (a customer, an account) for the call to succeed: the
	// example validates as it is, but the call answers not_found until
	// the reader puts a real id in.
	Placeholders []Placeholder
}

// Placeholder is a value of an example to replace before the call can
// succeed.
type Placeholder struct {
	Field string // JSON path, e.g. "legs[0].fromAccountId"
	Value string
}

// exampler makes example requests: it fills the fields the rules need, and
// no others, with values from the rules, the contract's own examples and
// its comments ("e.g. "USD""), and uses the validator to know which fields
// need a value and that the values it picked pass.
type exampler struct {
	v        protovalidate.Validator
	comments *Comments
}

// maxDepth bounds how deep examples nest messages.
const maxDepth = 8

// Example returns an example of a message of type md that passes
// validation.
func (e *exampler) Example(md protoreflect.MessageDescriptor) (*Example, error) {
	m := newMessage(md)
	var ph []Placeholder
	if err := e.fill(m, "", &ph, 0); err != nil {
		return nil, err
	}
	body, err := protojson.Marshal(m.Interface())
	if err != nil {
		return nil, err
	}
	// protojson varies its spacing on purpose; the page wants one form.
	var compact bytes.Buffer
	if err := json.Compact(&compact, body); err != nil {
		return nil, err
	}
	return &Example{Body: compact.String(), Placeholders: ph}, nil
}

// newMessage makes an empty message of type md: of its generated Go type
// when the binary has it, dynamic otherwise.
func newMessage(md protoreflect.MessageDescriptor) protoreflect.Message {
	if mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName()); err == nil {
		return mt.New()
	}
	return dynamicpb.NewMessage(md)
}

// violations returns the fields of m (by number) that break a rule; 0
// stands for a rule of the message as a whole.
func (e *exampler) violations(m protoreflect.Message) ([]protoreflect.FieldNumber, error) {
	err := e.v.Validate(m.Interface())
	if err == nil {
		return nil, nil
	}
	var ve *protovalidate.ValidationError
	if !errors.As(err, &ve) {
		return nil, err
	}
	var out []protoreflect.FieldNumber
	for _, v := range ve.Violations {
		n := protoreflect.FieldNumber(0)
		if els := v.Proto.GetField().GetElements(); len(els) > 0 {
			n = protoreflect.FieldNumber(els[0].GetFieldNumber())
		}
		out = append(out, n)
	}
	return out, nil
}

// fill sets the fields of m that validation needs, until m is valid.
func (e *exampler) fill(m protoreflect.Message, path string, ph *[]Placeholder, depth int) error {
	md := m.Descriptor()
	if depth > maxDepth {
		return fmt.Errorf("%s nests too deep for an example", md.FullName())
	}
	fields := md.Fields()
	tried := map[protoreflect.FieldNumber]bool{}
	for {
		viols, err := e.violations(m)
		if err != nil {
			return fmt.Errorf("%s: %w", md.FullName(), err)
		}
		if len(viols) == 0 {
			return nil
		}
		// First the fields that break their own rules, in field order.
		progressed := false
		for i := range fields.Len() {
			fd := fields.Get(i)
			if tried[fd.Number()] || !slices.Contains(viols, fd.Number()) {
				continue
			}
			tried[fd.Number()] = true
			progressed = true
			if err := e.choose(m, fd, path, ph, depth); err != nil {
				return err
			}
		}
		if progressed {
			continue
		}
		// What remains are rules of the message as a whole ("set at least
		// one of ..."): set the next field that helps.
		for i := range fields.Len() {
			fd := fields.Get(i)
			if tried[fd.Number()] || m.Has(fd) {
				continue
			}
			tried[fd.Number()] = true
			var extra []Placeholder
			if e.choose(m, fd, path, &extra, depth) != nil {
				m.Clear(fd)
				continue
			}
			after, err := e.violations(m)
			if err != nil {
				return err
			}
			if len(after) < len(viols) {
				*ph = append(*ph, extra...)
				progressed = true
				break
			}
			m.Clear(fd)
		}
		if !progressed {
			return fmt.Errorf("no example of %s passes validation (violations in fields %v)", md.FullName(), viols)
		}
	}
}

// choose sets fd in m to the first candidate value that breaks none of
// fd's rules.
func (e *exampler) choose(m protoreflect.Message, fd protoreflect.FieldDescriptor, path string, ph *[]Placeholder, depth int) error {
	fieldPath := joinPath(path, fd.JSONName())
	ok := func() (bool, error) {
		viols, err := e.violations(m)
		return !slices.Contains(viols, fd.Number()), err
	}
	switch {
	case fd.IsMap():
		return fmt.Errorf("%s: examples of map fields are not supported", fd.FullName())
	case fd.IsList():
		n := 1
		if r := fieldRulesOf(fd).GetRepeated(); r.GetMinItems() > 1 {
			n = int(r.GetMinItems())
		}
		list := m.NewField(fd).List()
		for i := range n {
			itemPath := fmt.Sprintf("%s[%d]", fieldPath, i)
			if fd.Message() != nil {
				item := list.NewElement()
				if err := e.fill(item.Message(), itemPath, ph, depth+1); err != nil {
					return err
				}
				list.Append(item)
				continue
			}
			var itemRules *validate.FieldRules
			if r := fieldRulesOf(fd).GetRepeated(); r != nil {
				itemRules = r.GetItems()
			}
			cands := e.scalarCandidates(fd, itemRules, i)
			if len(cands) == 0 {
				return fmt.Errorf("%s: no example value", fd.FullName())
			}
			list.Append(cands[0].value)
		}
		m.Set(fd, protoreflect.ValueOfList(list))
		good, err := ok()
		if err != nil || !good {
			return fmt.Errorf("%s: no example passes its rules (%v)", fd.FullName(), err)
		}
		return nil
	case fd.Message() != nil:
		if cands := wellKnownCandidates(fd.Message()); cands != nil {
			for _, c := range cands {
				v := m.NewField(fd)
				if err := protojson.Unmarshal([]byte(c), v.Message().Interface()); err != nil {
					return err
				}
				m.Set(fd, v)
				if good, err := ok(); err != nil || good {
					return err
				}
			}
			return fmt.Errorf("%s: no example passes its rules", fd.FullName())
		}
		v := m.NewField(fd)
		if err := e.fill(v.Message(), fieldPath, ph, depth+1); err != nil {
			return err
		}
		m.Set(fd, v)
		return nil
	}
	for _, c := range e.scalarCandidates(fd, fieldRulesOf(fd), int(fd.Index())) {
		m.Set(fd, c.value)
		good, err := ok()
		if err != nil {
			return err
		}
		if good {
			if c.placeholder {
				*ph = append(*ph, Placeholder{Field: fieldPath, Value: c.value.String()})
			}
			return nil
		}
	}
	m.Clear(fd)
	return fmt.Errorf("%s: no example value passes its rules", fd.FullName())
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// wellKnownCandidates returns JSON values to try for a well-known message
// type, or nil if md is none.
func wellKnownCandidates(md protoreflect.MessageDescriptor) []string {
	switch md.FullName() {
	case "google.protobuf.Timestamp":
		return []string{`"2025-01-01T00:00:00Z"`}
	case "google.protobuf.Duration":
		return []string{`"3600s"`, `"60s"`, `"1s"`, `"86400s"`}
	case "google.protobuf.FieldMask":
		return []string{`""`}
	case "google.protobuf.Struct":
		return []string{`{}`}
	case "google.protobuf.Empty":
		return []string{`{}`}
	}
	return nil
}

type candidate struct {
	value       protoreflect.Value
	placeholder bool // a made-up id of a resource that must exist
}

// hint finds the examples a comment gives: e.g. "USD".
var hint = regexp.MustCompile(`e\.g\.,? "([^"]+)"`)

// byName are example values for fields of common names.
var byName = map[string]string{
	"name":         "Ada Lovelace",
	"reason":       "requested by the customer",
	"description":  "example",
	"email":        "ada@example.com",
	"currency":     "USD",
	"role":         "support",
	"country_code": "US",
}

// scalarCandidates lists values to try for a scalar field, best first.
// seed varies values made from patterns between sibling fields.
func (e *exampler) scalarCandidates(fd protoreflect.FieldDescriptor, r *validate.FieldRules, seed int) []candidate {
	var out []candidate
	add := func(v protoreflect.Value) { out = append(out, candidate{value: v}) }
	switch fd.Kind() {
	case protoreflect.StringKind:
		var strs []string
		sr := r.GetString()
		strs = append(strs, sr.GetExample()...)
		for _, m := range hint.FindAllStringSubmatch(e.comments.Of(string(fd.FullName())), -1) {
			strs = append(strs, m[1])
		}
		switch {
		case sr.GetEmail():
			strs = append(strs, "ada@example.com")
		case sr.GetUuid():
			strs = append(strs, "3f2c8c1e-8d7a-4b7e-9a4e-2f1d6c7b8a90")
		case sr.GetTuuid():
			strs = append(strs, "3f2c8c1e8d7a4b7e9a4e2f1d6c7b8a90")
		case sr.GetUlid():
			strs = append(strs, "01ARZ3NDEKTSV4RRFFQ69G5FAV")
		case sr.GetHostname(), sr.GetAddress():
			strs = append(strs, "example.com")
		case sr.GetHostAndPort():
			strs = append(strs, "example.com:443")
		case sr.GetUri(), sr.GetUriRef():
			strs = append(strs, "https://example.com/")
		case sr.GetIp(), sr.GetIpv4():
			strs = append(strs, "192.0.2.1")
		case sr.GetIpv6():
			strs = append(strs, "2001:db8::1")
		}
		if s, ok := byName[string(fd.Name())]; ok {
			strs = append(strs, s)
		}
		for _, s := range strs {
			if s != "" {
				add(protoreflect.ValueOfString(s))
			}
		}
		// An id gets a made-up value of its pattern, which names nothing
		// that exists; any other string a word, if the rules take one.
		isID := fd.Name() == "id" || strings.HasSuffix(string(fd.Name()), "_id")
		fromPattern := func() {
			if sr.HasPattern() {
				if s := matchingString(sr.GetPattern(), seed); s != "" {
					out = append(out, candidate{value: protoreflect.ValueOfString(s), placeholder: isID})
				}
			}
		}
		if isID {
			fromPattern()
		}
		word := "example"
		if n := int(sr.GetMinLen()); n > len(word) {
			word += strings.Repeat("x", n-len(word))
		}
		add(protoreflect.ValueOfString(word))
		if !isID {
			fromPattern()
		}
		add(protoreflect.ValueOfString("x"))
	case protoreflect.BytesKind:
		add(protoreflect.ValueOfBytes([]byte("example")))
	case protoreflect.BoolKind:
		add(protoreflect.ValueOfBool(true))
	case protoreflect.EnumKind:
		values := fd.Enum().Values()
		for i := range values.Len() {
			if n := values.Get(i).Number(); n != 0 {
				add(protoreflect.ValueOfEnum(n))
			}
		}
		add(protoreflect.ValueOfEnum(0))
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		for _, f := range []float64{100, 1, 0.5} {
			if fd.Kind() == protoreflect.FloatKind {
				add(protoreflect.ValueOfFloat32(float32(f)))
			} else {
				add(protoreflect.ValueOfFloat64(f))
			}
		}
	default: // integers
		for _, n := range integerCandidates(r) {
			v, ok := integerValue(fd.Kind(), n)
			if ok {
				add(v)
			}
		}
	}
	return out
}

// integerCandidates lists integers to try: 100, then the rule's own
// bounds and values.
func integerCandidates(r *validate.FieldRules) []int64 {
	out := []int64{100}
	if r == nil {
		return append(out, 1)
	}
	m := r.ProtoReflect()
	if typ := m.Descriptor().Oneofs().ByName("type"); typ != nil {
		if which := m.WhichOneof(typ); which != nil {
			tm := m.Get(which).Message()
			num := func(name string) (int64, bool) {
				fd := tm.Descriptor().Fields().ByName(protoreflect.Name(name))
				if fd == nil || fd.IsList() || !tm.Has(fd) {
					return 0, false
				}
				v := tm.Get(fd)
				switch fd.Kind() {
				case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
					return int64(v.Uint()), true
				default:
					return v.Int(), true
				}
			}
			if n, ok := num("const"); ok {
				out = append(out, n)
			}
			if fd := tm.Descriptor().Fields().ByName("in"); fd != nil && tm.Get(fd).List().Len() > 0 {
				v := tm.Get(fd).List().Get(0)
				if fd.Kind() == protoreflect.Uint32Kind || fd.Kind() == protoreflect.Uint64Kind || fd.Kind() == protoreflect.Fixed32Kind || fd.Kind() == protoreflect.Fixed64Kind {
					out = append(out, int64(v.Uint()))
				} else {
					out = append(out, v.Int())
				}
			}
			if n, ok := num("gte"); ok {
				out = append(out, n)
			}
			if n, ok := num("gt"); ok {
				out = append(out, n+1)
			}
			if n, ok := num("lte"); ok {
				out = append(out, n)
			}
			if n, ok := num("lt"); ok {
				out = append(out, n-1)
			}
		}
	}
	return append(out, 1)
}

func integerValue(k protoreflect.Kind, n int64) (protoreflect.Value, bool) {
	switch k {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(n)), true
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(n), true
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		if n < 0 {
			return protoreflect.Value{}, false
		}
		return protoreflect.ValueOfUint32(uint32(n)), true
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		if n < 0 {
			return protoreflect.Value{}, false
		}
		return protoreflect.ValueOfUint64(uint64(n)), true
	}
	return protoreflect.Value{}, false
}
