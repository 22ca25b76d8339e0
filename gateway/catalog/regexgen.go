package catalog

import (
	"regexp"
	"regexp/syntax"
	"strings"
)

// matchingString returns a short string that the regular expression
// matches, or "" if it cannot make one. seed picks among the characters a
// class allows, so that two fields with the same pattern can get different
// values ("lac_000…" and "lac_111…").
func matchingString(pattern string, seed int) string {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return ""
	}
	var b strings.Builder
	if !generate(&b, re.Simplify(), seed, 0) {
		return ""
	}
	s := b.String()
	if ok, _ := regexp.MatchString(pattern, s); !ok {
		return ""
	}
	return s
}

func generate(b *strings.Builder, re *syntax.Regexp, seed, depth int) bool {
	if depth > 50 {
		return false
	}
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return true
	case syntax.OpLiteral:
		b.WriteString(string(re.Rune))
		return true
	case syntax.OpCharClass:
		r, ok := pickRune(re.Rune, seed)
		if ok {
			b.WriteRune(r)
		}
		return ok
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		b.WriteByte('x')
		return true
	case syntax.OpCapture:
		return generate(b, re.Sub[0], seed, depth+1)
	case syntax.OpStar, syntax.OpQuest:
		return true
	case syntax.OpPlus:
		return generate(b, re.Sub[0], seed, depth+1)
	case syntax.OpRepeat:
		for range re.Min {
			if !generate(b, re.Sub[0], seed, depth+1) {
				return false
			}
		}
		return true
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			if !generate(b, sub, seed, depth+1) {
				return false
			}
		}
		return true
	case syntax.OpAlternate:
		return generate(b, re.Sub[0], seed, depth+1)
	default:
		return false
	}
}

// pickRune picks a printable rune of a character class (pairs of ranges),
// the seed-th one it allows, wrapping around.
func pickRune(ranges []rune, seed int) (rune, bool) {
	var allowed []rune
	for i := 0; i+1 < len(ranges) && len(allowed) < 256; i += 2 {
		for r := ranges[i]; r <= ranges[i+1] && len(allowed) < 256; r++ {
			if r > ' ' && r < 0x7f && r != '\'' && r != '\\' && r != '"' {
				allowed = append(allowed, r)
			}
		}
	}
	if len(allowed) == 0 {
		return 0, false
	}
	return allowed[seed%len(allowed)], true
}
