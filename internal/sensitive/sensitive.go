// Package sensitive reads the sensitivity classes the contracts give fields
// ((plinth.options.v1.sensitivity)) and redacts classified values from
// messages, for logs. Masking for callers (issue 4) builds on the same walk.
package sensitive

import (
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	optionsv1 "plinth.dev/plinth/sdk/go/gen/plinth/options/v1"
)

// ClassOf returns the sensitivity class the contract gives a field, or
// SENSITIVITY_UNSPECIFIED.
func ClassOf(fd protoreflect.FieldDescriptor) optionsv1.Sensitivity {
	// Every call masks, audits and logs through here, field by field, and
	// reading an extension allocates: the answer is kept per field (there
	// are as many as the contracts declare).
	if c, ok := classOfField.Load(fd); ok {
		return c.(optionsv1.Sensitivity)
	}
	class := optionsv1.Sensitivity_SENSITIVITY_UNSPECIFIED
	if opts := fd.Options(); opts != nil {
		class, _ = proto.GetExtension(opts, optionsv1.E_Sensitivity).(optionsv1.Sensitivity)
	}
	classOfField.Store(fd, class)
	return class
}

var (
	classOfField sync.Map // protoreflect.FieldDescriptor -> optionsv1.Sensitivity
	mayHoldByMsg sync.Map // protoreflect.FullName -> bool
)

// MayHold reports whether a message of type md can hold a classified field
// (of any class, SECRET included), at any depth: when it cannot, there is
// nothing in it to mask, redact or clear, and walking it can be skipped.
func MayHold(md protoreflect.MessageDescriptor) bool {
	if v, ok := mayHoldByMsg.Load(md.FullName()); ok {
		return v.(bool)
	}
	h := mayHold(md, map[protoreflect.FullName]bool{})
	mayHoldByMsg.Store(md.FullName(), h)
	return h
}

func mayHold(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) bool {
	if seen[md.FullName()] {
		return false // a recursive type: its other fields decide
	}
	seen[md.FullName()] = true
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if ClassOf(fd) != optionsv1.Sensitivity_SENSITIVITY_UNSPECIFIED {
			return true
		}
		// A list's element, a map's entry (whose value is a field of it),
		// or a singular message.
		if m := fd.Message(); m != nil && mayHold(m, seen) {
			return true
		}
	}
	return false
}

// Placeholder returns what a redacted string field holds: "[PII]", "[PCI]"
// or "[PHI]".
func Placeholder(class optionsv1.Sensitivity) string {
	switch class {
	case optionsv1.Sensitivity_SENSITIVITY_PII:
		return "[PII]"
	case optionsv1.Sensitivity_SENSITIVITY_PCI:
		return "[PCI]"
	case optionsv1.Sensitivity_SENSITIVITY_PHI:
		return "[PHI]"
	case optionsv1.Sensitivity_SENSITIVITY_SECRET:
		return "[SECRET]"
	default:
		return "[SENSITIVE]"
	}
}

// ClearSecrets returns a copy of msg in which every field classified
// SENSITIVITY_SECRET (a credential) is cleared, for what keeps a response
// (idempotency records): a credential is shown once and never stored.
func ClearSecrets(msg proto.Message) proto.Message {
	out := proto.Clone(msg)
	clearSecrets(out.ProtoReflect())
	return out
}

func clearSecrets(m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case ClassOf(fd) == optionsv1.Sensitivity_SENSITIVITY_SECRET:
			m.Clear(fd)
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				clearSecrets(v.List().Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				clearSecrets(mv.Message())
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			clearSecrets(v.Message())
		}
		return true
	})
}

// Redact returns a copy of msg in which every set field the contract
// classifies is replaced: a string by its class's placeholder, anything
// else (bytes, numbers, messages, lists, maps) cleared. Fields of nested
// messages are redacted too. msg itself is not changed.
func Redact(msg proto.Message) proto.Message {
	out := proto.Clone(msg)
	redact(out.ProtoReflect())
	return out
}

func redact(m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if class := ClassOf(fd); class != optionsv1.Sensitivity_SENSITIVITY_UNSPECIFIED {
			if fd.Kind() == protoreflect.StringKind && !fd.IsList() && !fd.IsMap() {
				m.Set(fd, protoreflect.ValueOfString(Placeholder(class)))
			} else {
				m.Clear(fd)
			}
			return true
		}
		switch {
		case fd.IsList() && fd.Message() != nil:
			list := v.List()
			for i := range list.Len() {
				redact(list.Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				redact(mv.Message())
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			redact(v.Message())
		}
		return true
	})
}

// StrictestClass returns the strictest class of sensitive data that a
// message of type md can hold, in any field at any depth: PHI over PCI over
// PII, and SENSITIVITY_UNSPECIFIED if it holds none. Credentials
// (SENSITIVITY_SECRET) are not counted: nothing stores them.
func StrictestClass(md protoreflect.MessageDescriptor) optionsv1.Sensitivity {
	return strictest(md, map[protoreflect.FullName]bool{})
}

var classRank = map[optionsv1.Sensitivity]int{
	optionsv1.Sensitivity_SENSITIVITY_PII: 1,
	optionsv1.Sensitivity_SENSITIVITY_PCI: 2,
	optionsv1.Sensitivity_SENSITIVITY_PHI: 3,
}

func strictest(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) optionsv1.Sensitivity {
	if seen[md.FullName()] {
		return optionsv1.Sensitivity_SENSITIVITY_UNSPECIFIED
	}
	seen[md.FullName()] = true
	best := optionsv1.Sensitivity_SENSITIVITY_UNSPECIFIED
	consider := func(c optionsv1.Sensitivity) {
		if classRank[c] > classRank[best] {
			best = c
		}
	}
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		consider(ClassOf(fd))
		if fd.IsMap() {
			fd = fd.MapValue()
		}
		if fd.Message() != nil {
			consider(strictest(fd.Message(), seen))
		}
	}
	return best
}
