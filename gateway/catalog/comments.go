package catalog

import (
	_ "embed"
	"fmt"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
)

// contracts is the contracts' descriptor set with source info, which the Go
// descriptors compiled into the binary do not carry: scripts/generate.sh
// writes it (buf build --as-file-descriptor-set), and
// scripts/check-contracts.sh fails when it is stale.
//
//go:embed contracts.binpb
var contracts []byte

// Comments holds the leading comments of the contracts' declarations.
type Comments struct {
	// byName: messages, fields, enums, services and methods by full name;
	// an enum value by its enum's full name, a dot and its own name.
	byName map[string]string
	// packages: the comment on a file's package statement, by file path.
	packages map[string]string
}

// Of returns the leading comment of the declaration with this full name,
// or "".
func (c *Comments) Of(fullName string) string {
	if c == nil {
		return ""
	}
	return c.byName[fullName]
}

// Package returns the comment on the package statement of the file at path
// (e.g. "plinth/customers/v1/customers.proto"), or "".
func (c *Comments) Package(path string) string {
	if c == nil {
		return ""
	}
	return c.packages[path]
}

var (
	embeddedOnce     sync.Once
	embeddedComments *Comments
	embeddedErr      error
)

// EmbeddedComments returns the comments of the descriptor set embedded in
// the binary.
func EmbeddedComments() (*Comments, error) {
	embeddedOnce.Do(func() {
		embeddedComments, embeddedErr = ParseComments(contracts)
	})
	return embeddedComments, embeddedErr
}

// Field numbers of descriptor.proto that source-info paths are made of.
const (
	filePackage     = 2
	fileMessageType = 4
	fileEnumType    = 5
	fileService     = 6
	messageField    = 2
	messageNested   = 3
	messageEnumType = 4
	enumValue       = 2
	serviceMethod   = 2
)

// ParseComments reads the leading comments of a serialized
// google.protobuf.FileDescriptorSet that has source info.
func ParseComments(set []byte) (*Comments, error) {
	var fds descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(set, &fds); err != nil {
		return nil, fmt.Errorf("catalog: reading the contracts' descriptor set: %w", err)
	}
	c := &Comments{byName: map[string]string{}, packages: map[string]string{}}
	for _, f := range fds.GetFile() {
		byPath := map[string]string{}
		for _, loc := range f.GetSourceCodeInfo().GetLocation() {
			if text := loc.GetLeadingComments(); text != "" {
				byPath[pathKey(loc.GetPath())] = text
			}
		}
		if text := byPath[pathKey([]int32{filePackage})]; text != "" {
			c.packages[f.GetName()] = text
		}
		pkg := f.GetPackage()
		for i, m := range f.GetMessageType() {
			c.message(byPath, pkg, m, []int32{fileMessageType, int32(i)})
		}
		for i, e := range f.GetEnumType() {
			c.enum(byPath, pkg, e, []int32{fileEnumType, int32(i)})
		}
		for i, s := range f.GetService() {
			path := []int32{fileService, int32(i)}
			name := join(pkg, s.GetName())
			c.put(byPath, name, path)
			for j, m := range s.GetMethod() {
				c.put(byPath, name+"."+m.GetName(), append(clone(path), serviceMethod, int32(j)))
			}
		}
	}
	return c, nil
}

func (c *Comments) message(byPath map[string]string, scope string, m *descriptorpb.DescriptorProto, path []int32) {
	name := join(scope, m.GetName())
	c.put(byPath, name, path)
	for i, f := range m.GetField() {
		c.put(byPath, name+"."+f.GetName(), append(clone(path), messageField, int32(i)))
	}
	for i, n := range m.GetNestedType() {
		c.message(byPath, name, n, append(clone(path), messageNested, int32(i)))
	}
	for i, e := range m.GetEnumType() {
		c.enum(byPath, name, e, append(clone(path), messageEnumType, int32(i)))
	}
}

func (c *Comments) enum(byPath map[string]string, scope string, e *descriptorpb.EnumDescriptorProto, path []int32) {
	name := join(scope, e.GetName())
	c.put(byPath, name, path)
	for i, v := range e.GetValue() {
		c.put(byPath, name+"."+v.GetName(), append(clone(path), enumValue, int32(i)))
	}
}

func (c *Comments) put(byPath map[string]string, name string, path []int32) {
	if text := byPath[pathKey(path)]; text != "" {
		c.byName[name] = text
	}
}

func join(scope, name string) string {
	if scope == "" {
		return name
	}
	return scope + "." + name
}

func clone(p []int32) []int32 { return append([]int32(nil), p...) }

func pathKey(p []int32) string {
	var b strings.Builder
	for _, n := range p {
		fmt.Fprintf(&b, "%d.", n)
	}
	return b.String()
}

// Block is a paragraph of a comment: prose, or preformatted text (lines
// indented in the source, such as a diagram).
type Block struct {
	Pre  bool
	Text string
}

// paragraphs splits a proto comment into blocks: blank lines separate
// them, lines of prose are joined, and a paragraph with an indented line
// keeps its lines as they are.
func paragraphs(comment string) []Block {
	var (
		blocks []Block
		para   []string
	)
	flush := func() {
		if len(para) == 0 {
			return
		}
		pre := false
		for _, l := range para {
			if strings.HasPrefix(l, "\t") || strings.HasPrefix(l, "  ") {
				pre = true
			}
		}
		if pre {
			blocks = append(blocks, Block{Pre: true, Text: dedent(para)})
		} else {
			blocks = append(blocks, Block{Text: strings.Join(para, " ")})
		}
		para = nil
	}
	for _, line := range strings.Split(strings.TrimRight(comment, "\n"), "\n") {
		line = strings.TrimPrefix(line, " ")
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		para = append(para, strings.TrimRight(line, " \t"))
	}
	flush()
	return blocks
}

// dedent removes the indentation all lines share, counting a tab as a unit
// of its own.
func dedent(lines []string) string {
	prefix := ""
	for i, l := range lines {
		lead := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
		if i == 0 {
			prefix = lead
			continue
		}
		for !strings.HasPrefix(lead, prefix) {
			prefix = prefix[:len(prefix)-1]
		}
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = strings.ReplaceAll(strings.TrimPrefix(l, prefix), "\t", "    ")
	}
	return strings.Join(out, "\n")
}
