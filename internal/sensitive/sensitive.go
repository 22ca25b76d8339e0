// Package sensitive reads the sensitivity classes the contracts give fields
// ((plinth.options.v1.sensitivity)) and redacts classified values from
// messages, for logs. Masking for callers (issue 4) builds on the same walk.
package sensitive

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	optionsv1 "plinth.dev/plinth/sdk/go/gen/plinth/options/v1"
)

// ClassOf returns the sensitivity class the contract gives a field, or
// SENSITIVITY_UNSPECIFIED.
func ClassOf(fd protoreflect.FieldDescriptor) optionsv1.Sensitivity {
	opts := fd.Options()
	if opts == nil {
		return optionsv1.Sensitivity_SENSITIVITY_UNSPECIFIED
	}
	class, _ := proto.GetExtension(opts, optionsv1.E_Sensitivity).(optionsv1.Sensitivity)
	return class
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
	default:
		return "[SENSITIVE]"
	}
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
