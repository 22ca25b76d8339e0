package access

import (
	"strings"
	"testing"
)

// FuzzPrefixOf parses arbitrary presented keys. prefixOf never panics, and
// accepts exactly the format of the README: "plk_", 8 lowercase hex
// characters, "_", 64 lowercase hex characters and nothing else (checked
// here with the regular expression of TestNewCredential), returning the 8
// characters of the prefix.
func FuzzPrefixOf(f *testing.F) {
	good := "plk_0123abcd_" + strings.Repeat("0123456789abcdef", 4)
	for _, s := range []string{
		good, strings.ToUpper(good), good[:len(good)-1], good + "0", good[:12] + "-" + good[13:],
		"plk_", "", dummyKey, "Bearer " + good, "plk_" + strings.Repeat("é", 4) + good[12:], good[:20] + "\x00" + good[21:],
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, presented string) {
		prefix, ok := prefixOf(presented)
		want := presentedPattern.MatchString(presented)
		if ok != want {
			t.Fatalf("prefixOf(%q) accepted = %v, want %v", presented, ok, want)
		}
		if ok && prefix != presented[4:12] {
			t.Fatalf("prefixOf(%q) = %q, want %q", presented, prefix, presented[4:12])
		}
		if !ok && prefix != "" {
			t.Fatalf("prefixOf(%q) refused it but returned prefix %q", presented, prefix)
		}
	})
}
