package sensitive

import (
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	optionsv1 "plinth.dev/plinth/sdk/go/gen/plinth/options/v1"
)

// Mask returns msg with every set field of a class that reveal refuses
// masked, and the classes of the set fields that reveal allowed (what was
// revealed, for the audit). msg itself is not changed; if nothing needs
// masking, msg is returned as it is.
//
// A mask fits its field, so a caller can still tell values apart:
//
//	email            "***@example.com"   the domain only
//	tax id, account
//	or card number   "****6789"          the last four characters
//	phone            "****0100"          the last four digits
//	anything else    "****"              (every string of a message field)
//
// Credentials (SENSITIVITY_SECRET) are never masked here: they appear only
// in the answer that creates them, to the caller that asked.
func Mask(msg proto.Message, reveal func(optionsv1.Sensitivity) bool) (proto.Message, []optionsv1.Sensitivity) {
	if !MayHold(msg.ProtoReflect().Descriptor()) {
		return msg, nil
	}
	var revealed classSet
	out := msg
	if needsMask(msg.ProtoReflect(), reveal, &revealed) {
		out = proto.Clone(msg)
		mask(out.ProtoReflect(), reveal)
	}
	return out, revealed.classes()
}

// Revealed returns the classes that Mask(msg, reveal) would report shown in
// full, without masking anything.
func Revealed(msg proto.Message, reveal func(optionsv1.Sensitivity) bool) []optionsv1.Sensitivity {
	if !MayHold(msg.ProtoReflect().Descriptor()) {
		return nil
	}
	var revealed classSet
	needsMask(msg.ProtoReflect(), reveal, &revealed)
	return revealed.classes()
}

// classSet is a set of the classes PII, PCI and PHI.
type classSet uint8

func (s *classSet) add(c optionsv1.Sensitivity) { *s |= 1 << c }

// classes returns the classes in s, in the order PII, PCI, PHI.
func (s classSet) classes() []optionsv1.Sensitivity {
	var classes []optionsv1.Sensitivity
	for _, c := range []optionsv1.Sensitivity{optionsv1.Sensitivity_SENSITIVITY_PII, optionsv1.Sensitivity_SENSITIVITY_PCI, optionsv1.Sensitivity_SENSITIVITY_PHI} {
		if s&(1<<c) != 0 {
			classes = append(classes, c)
		}
	}
	return classes
}

// needsMask reports whether m has a set field to mask, and notes the
// classes it shows in full. It runs on every answer, so it reads the fields
// by descriptor rather than through Range, whose callback costs an
// allocation per message.
func needsMask(m protoreflect.Message, reveal func(optionsv1.Sensitivity) bool, revealed *classSet) bool {
	need := false
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if class := ClassOf(fd); class != optionsv1.Sensitivity_SENSITIVITY_UNSPECIFIED && class != optionsv1.Sensitivity_SENSITIVITY_SECRET {
			if !m.Has(fd) {
				continue
			}
			if reveal(class) {
				revealed.add(class)
			} else {
				need = true
			}
			continue
		}
		// A map's Message is its entry, which holds the value.
		if md := fd.Message(); md == nil || !MayHold(md) || !m.Has(fd) {
			continue
		}
		v := m.Get(fd)
		switch {
		case fd.IsList():
			list := v.List()
			for j := range list.Len() {
				need = needsMask(list.Get(j).Message(), reveal, revealed) || need
			}
		case fd.IsMap():
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				need = needsMask(mv.Message(), reveal, revealed) || need
				return true
			})
		default:
			need = needsMask(v.Message(), reveal, revealed) || need
		}
	}
	return need
}

func mask(m protoreflect.Message, reveal func(optionsv1.Sensitivity) bool) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		class := ClassOf(fd)
		switch {
		case class == optionsv1.Sensitivity_SENSITIVITY_UNSPECIFIED || class == optionsv1.Sensitivity_SENSITIVITY_SECRET:
			forEachMessage(fd, v, func(child protoreflect.Message) { mask(child, reveal) })
		case reveal(class):
		case fd.Kind() == protoreflect.StringKind && !fd.IsList() && !fd.IsMap():
			m.Set(fd, protoreflect.ValueOfString(maskString(string(fd.Name()), v.String())))
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			blank(v.Message())
		default:
			m.Clear(fd)
		}
		return true
	})
}

// blank masks every string of a message that is sensitive as a whole (an
// address) and clears everything else in it.
func blank(m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Kind() == protoreflect.StringKind && !fd.IsList() && !fd.IsMap():
			m.Set(fd, protoreflect.ValueOfString("****"))
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			blank(v.Message())
		default:
			m.Clear(fd)
		}
		return true
	})
}

// maskString masks one value by what its field holds, as Mask documents.
func maskString(field, value string) string {
	switch {
	case strings.Contains(field, "email"):
		if at := strings.LastIndexByte(value, '@'); at >= 0 {
			return "***" + value[at:]
		}
	case strings.Contains(field, "tax_id"), strings.Contains(field, "account_number"),
		strings.Contains(field, "card_number"), strings.Contains(field, "phone"):
		if len(value) > 4 {
			return "****" + value[len(value)-4:]
		}
	}
	return "****"
}

func forEachMessage(fd protoreflect.FieldDescriptor, v protoreflect.Value, f func(protoreflect.Message)) {
	switch {
	case fd.IsList() && fd.Message() != nil:
		for i := range v.List().Len() {
			f(v.List().Get(i).Message())
		}
	case fd.IsMap() && fd.MapValue().Message() != nil:
		v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
			f(mv.Message())
			return true
		})
	case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
		f(v.Message())
	}
}
