package gateway

import (
	"context"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"plinth.dev/plinth/internal/sensitive"
	optionsv1 "plinth.dev/plinth/sdk/go/gen/plinth/options/v1"
)

// masker masks the sensitive fields of every answer that the caller's roles
// do not allow it to reveal, and notes what it did reveal. It sits outside
// idempotency, so a replayed answer is masked for whoever asks, as the
// first one was.
type masker struct {
	roles *roles
}

// outgoing carries an answer rebuilt by the gateway (masked): connect sends
// whatever message a response's Any returns.
type outgoing struct{ proto.Message }

// classNames names sensitivity classes as roles' reveal lists do.
var classNames = map[optionsv1.Sensitivity]string{
	optionsv1.Sensitivity_SENSITIVITY_PII: "pii",
	optionsv1.Sensitivity_SENSITIVITY_PCI: "pci",
	optionsv1.Sensitivity_SENSITIVITY_PHI: "phi",
}

func (m *masker) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		res, err := next(ctx, req)
		if err != nil {
			return nil, err
		}
		msg, ok := res.Any().(proto.Message)
		if !ok {
			return res, nil
		}
		out, revealed := m.mask(ctx, msg)
		noteRevealed(ctx, revealed)
		if out == msg {
			return res, nil
		}
		masked := connect.NewResponse(&outgoing{out})
		for k, vs := range res.Header() {
			masked.Header()[k] = vs
		}
		for k, vs := range res.Trailer() {
			masked.Trailer()[k] = vs
		}
		return masked, nil
	}
}

// mask returns msg as the caller may see it, and the classes of sensitive
// data it shows in full.
func (m *masker) mask(ctx context.Context, msg proto.Message) (proto.Message, []optionsv1.Sensitivity) {
	return sensitive.Mask(msg, m.mayReveal(ctx))
}

// reveals returns the classes of sensitive data that msg, masked, shows
// the caller in full: what mask will report, known before it runs.
func (m *masker) reveals(ctx context.Context, msg proto.Message) []string {
	var names []string
	for _, c := range sensitive.Revealed(msg, m.mayReveal(ctx)) {
		names = append(names, classNames[c])
	}
	return names
}

func (m *masker) mayReveal(ctx context.Context) func(optionsv1.Sensitivity) bool {
	p, _ := PrincipalFrom(ctx)
	return func(c optionsv1.Sensitivity) bool { return m.roles.mayReveal(p.Roles, classNames[c]) }
}

func (m *masker) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler refuses nothing and masks nothing: no capability
// streams. One that does must mask its messages before it is served.
func (m *masker) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
