package calls

import (
	"strings"
	"testing"
	"time"
)

func TestNames(t *testing.T) {
	cases := []struct {
		name, ext, dial string
	}{
		{"Local/150@inoffice-00000000;1", "150", "Local/150@inoffice"},
		{"Local/+375296254070@inoffice-00000001;2", "+375296254070", "Local/+375296254070@inoffice"},
		{"Local/101@from-queue-0000000a;1", "101", "Local/101@from-queue"},
		{"PJSIP/102-00000003", "102", "PJSIP/102"},
		{"SIP/trunk-0000001f", "trunk", "SIP/trunk"},
		{"DAHDI/i1/5551234-1", "i1/5551234", "DAHDI/i1/5551234"},
		{"Foo/bar", "bar", "Foo/bar"},
		{"weird", "weird", "weird"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := extOf(tc.name); got != tc.ext {
				t.Errorf("extOf = %q, want %q", got, tc.ext)
			}
			if got := dialStringOf(tc.name); got != tc.dial {
				t.Errorf("dialStringOf = %q, want %q", got, tc.dial)
			}
		})
	}
	targets := map[string]string{
		"+375296254070@inoffice":             "+375296254070",
		"Local/+375296254070@inoffice,30,tT": "+375296254070",
		"PJSIP/102&PJSIP/103":                "102",
		"PJSIP/5551234@trunk":                "5551234",
		"trunk/80291234567":                  "80291234567",
		"102":                                "102",
		"":                                   "",
	}
	for in, want := range targets {
		if got := dialTarget(in); got != want {
			t.Errorf("dialTarget(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseTimestamp(t *testing.T) {
	cases := map[string]time.Time{
		"1795336999.491584": time.Unix(1795336999, 491584000).UTC(),
		"1795336999":        time.Unix(1795336999, 0).UTC(),
	}
	for in, want := range cases {
		if got, ok := parseTimestamp(in); !ok || !got.Equal(want) {
			t.Errorf("parseTimestamp(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "x", "-5.1", "1795336999.x", "99999999999999999999"} {
		if _, ok := parseTimestamp(bad); ok {
			t.Errorf("parseTimestamp(%q) accepted", bad)
		}
	}
}

// FuzzNames checks the channel name and header parsers never panic and
// keep their shape on arbitrary input.
func FuzzNames(f *testing.F) {
	for _, s := range []string{"Local/150@inoffice-00000000;1", "PJSIP/102-00000003", ";2", "Local/;1", "1795336999.491584", "00:01:02", "-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ext := extOf(s); len(ext) > len(s) {
			t.Fatalf("extOf(%q) = %q grew", s, ext)
		}
		if d := dialStringOf(s); !strings.HasPrefix(s, d) {
			t.Fatalf("dialStringOf(%q) = %q is not a prefix", s, d)
		}
		if base, half, ok := localBase(s); ok && (half < 1 || half > 2 || base+";"+string(rune('0'+half)) != s) {
			t.Fatalf("localBase(%q) = %q %d", s, base, half)
		}
		_ = dialTarget(s)
		_, _ = parseTimestamp(s)
		if d := parseHMS(s); d < 0 {
			t.Fatalf("parseHMS(%q) = %v", s, d)
		}
	})
}
