package calls

import (
	"strconv"
	"strings"
	"time"
)

// localBase returns the name shared by both halves of a Local channel pair
// ("Local/150@inoffice-00000000" for ";1" and ";2") and whether name is a
// Local channel half. Both halves are one leg of a call: ";1" is what the
// dialler sees, ";2" runs the dialplan of the dialled extension.
func localBase(name string) (base string, half int, ok bool) {
	if !strings.HasPrefix(name, "Local/") || len(name) < 3 || name[len(name)-2] != ';' {
		return name, 0, false
	}
	switch name[len(name)-1] {
	case '1':
		return name[:len(name)-2], 1, true
	case '2':
		return name[:len(name)-2], 2, true
	}
	return name, 0, false
}

// extOf returns the extension a channel name stands for:
// "Local/101@from-queue-0000000a;1" → "101", "PJSIP/102-00000003" → "102",
// "SIP/trunk-0000001f" → "trunk". It is what answered_by and hungup_by report.
func extOf(name string) string {
	name, _, _ = localBase(name)
	_, rest, ok := strings.Cut(name, "/")
	if !ok {
		return name
	}
	if at := strings.IndexByte(rest, '@'); at >= 0 {
		return rest[:at]
	}
	// Drop Asterisk's "-<hex sequence>" suffix of a channel name.
	if dash := strings.LastIndexByte(rest, '-'); dash > 0 && isHex(rest[dash+1:]) {
		return rest[:dash]
	}
	return rest
}

// dialTarget returns the number a dial string or Dial() argument aims at:
// "+375296254070@inoffice", "Local/+375296254070@inoffice,30,tT",
// "PJSIP/102&PJSIP/103" (first target), "PJSIP/5551234@trunk" and
// "trunk/5551234" all give the bare number or extension.
func dialTarget(s string) string {
	if i := strings.IndexAny(s, ",&"); i >= 0 {
		s = s[:i]
	}
	if at := strings.IndexByte(s, '@'); at >= 0 {
		s = s[:at]
	}
	if sl := strings.LastIndexByte(s, '/'); sl >= 0 {
		s = s[sl+1:]
	}
	return strings.TrimSpace(s)
}

// dialStringOf returns the dial string a channel was created from
// ("Local/busy@inoffice" for "Local/busy@inoffice-00000002;1"), which is what
// a failed OriginateResponse names in its Channel header.
func dialStringOf(name string) string {
	name, _, _ = localBase(name)
	if dash := strings.LastIndexByte(name, '-'); dash > 0 && isHex(name[dash+1:]) {
		return name[:dash]
	}
	return name
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// isExtension reports whether s looks like an internal extension: 1 to
// maxDigits decimal digits. Trunk peers ("trunk", "provider") and external
// numbers ("+375296254070", "80291234567") are not.
func isExtension(s string, maxDigits int) bool {
	if s == "" || len(s) > maxDigits {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// knownValue drops Asterisk's placeholders for an unset caller id.
func knownValue(s string) string {
	if s == "<unknown>" || s == "<Unknown>" {
		return ""
	}
	return s
}

// atoi parses a small decimal header value; anything else is 0.
func atoi(s string) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0
	}
	return n
}

// parseHMS parses CoreShowChannel's Duration "HH:MM:SS".
func parseHMS(s string) time.Duration {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0
	}
	h, m, sec := atoi(parts[0]), atoi(parts[1]), atoi(parts[2])
	if h < 0 || m < 0 || sec < 0 || h > 100000 {
		return 0
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second
}

// parseTimestamp parses the "Timestamp: <epoch>.<usec>" header Asterisk adds
// with timestampevents=yes.
func parseTimestamp(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	sec, frac, _ := strings.Cut(s, ".")
	secs, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || secs <= 0 || secs > 1<<40 {
		return time.Time{}, false
	}
	var nanos int64
	if frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		f, err := strconv.ParseInt(frac, 10, 64)
		if err != nil || f < 0 {
			return time.Time{}, false
		}
		for i := len(frac); i < 9; i++ {
			f *= 10
		}
		nanos = f
	}
	return time.Unix(secs, nanos).UTC(), true
}

// Q.850 causes the tracker reports itself, with Asterisk's texts.
const (
	causeUnknown         = 0
	causeUnallocated     = 1
	causeNoRoute         = 3
	causeNormalClearing  = 16
	causeUserBusy        = 17
	causeNoUserResponse  = 18
	causeNoAnswer        = 19
	causeCallRejected    = 21
	causeCongestion      = 34
	causeTempFailure     = 41
	causeChanUnavailable = 44
	causeTextUnknown     = "Unknown"
	causeTextReconnect   = "unknown (AMI reconnect)"
	causeTextEvicted     = "unknown (call evicted: tracker full)"
)

var causeTexts = map[int]string{
	causeUnknown:        causeTextUnknown,
	causeNormalClearing: "Normal Clearing",
	causeUserBusy:       "User busy",
	causeNoAnswer:       "User alerting, no answer",
	causeCongestion:     "Circuit/channel congestion",
}

func causeText(c int) string {
	if t, ok := causeTexts[c]; ok {
		return t
	}
	return "cause " + strconv.Itoa(c)
}
