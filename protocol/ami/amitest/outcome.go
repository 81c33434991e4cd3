package amitest

import (
	"fmt"
	"time"
)

type result uint8

const (
	resultDialplan result = iota // whatever the built-in dialplan says
	resultAnswer
	resultBusy
	resultNoAnswer
	resultCongestion
	resultNoSuchExtension
)

// Outcome is what happens when an extension is dialled. The zero value
// means "what the built-in dialplan says" (see Dialplan).
type Outcome struct {
	r       result
	ringFor time.Duration
}

// The outcomes an extension can have.
var (
	// Dialplan restores the built-in dialplan for an extension.
	Dialplan = Outcome{}
	// Answer: the extension answers and stays up (Wait(600)).
	Answer = Outcome{r: resultAnswer}
	// Busy: Busy() — hangup cause 17, OriginateResponse Reason 5.
	Busy = Outcome{r: resultBusy}
	// NoAnswer: Ringing() until the caller's Timeout — cause 19, Reason 3.
	NoAnswer = Outcome{r: resultNoAnswer}
	// Congestion: Congestion() — cause 34, Reason 8.
	Congestion = Outcome{r: resultCongestion}
	// NoSuchExtension: the extension does not exist — Reason 0.
	NoSuchExtension = Outcome{r: resultNoSuchExtension}
)

// AfterRinging returns o applied after the extension rang for d (state
// Ringing, DialState RINGING). A ring longer than the caller's Timeout
// ends as no answer.
func (o Outcome) AfterRinging(d time.Duration) Outcome {
	o.ringFor = d
	return o
}

func (o Outcome) String() string {
	names := [...]string{"Dialplan", "Answer", "Busy", "NoAnswer", "Congestion", "NoSuchExtension"}
	s := names[o.r]
	if o.ringFor > 0 {
		s = fmt.Sprintf("%s after ringing %v", s, o.ringFor)
	}
	return s
}

// builtinOutcome is the dialplan of the captures (the lab's inoffice):
//
//	_1XX, _2XX      internal phones: Answer, Wait(600)
//	_+X., _X.       external numbers: Answer, Wait(600)
//	busy, 5550001   Busy()
//	congestion, 5550002  Congestion()
//	noanswer, 5550000    Ringing(), Wait(600)
//
// Anything else does not exist. The numeric test lines are the ones the
// API can dial (it takes digits only); exact extensions win over the
// patterns, as in Asterisk (capture 18).
func builtinOutcome(exten string) result {
	switch exten {
	case "busy", "5550001":
		return resultBusy
	case "congestion", "5550002":
		return resultCongestion
	case "noanswer", "5550000":
		return resultNoAnswer
	}
	switch {
	case len(exten) == 3 && (exten[0] == '1' || exten[0] == '2') && isDigits(exten[1:]):
		return resultAnswer
	case len(exten) >= 2 && exten[0] == '+' && isDigits(exten[1:2]):
		return resultAnswer
	case len(exten) >= 2 && isDigits(exten[:1]):
		return resultAnswer
	}
	return resultNoSuchExtension
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Hangup causes (Q.850) and their Cause-txt, as Asterisk prints them.
const (
	causeUnknown    = 0
	causeNormal     = 16
	causeBusy       = 17
	causeNoAnswer   = 19
	causeCongestion = 34
)

var causeText = map[int]string{
	0:   "Unknown",
	1:   "Unallocated (unassigned) number",
	3:   "No route to destination",
	16:  "Normal Clearing",
	17:  "User busy",
	18:  "No user responding",
	19:  "User alerting, no answer",
	21:  "Call Rejected",
	27:  "Destination out of order",
	31:  "Normal, unspecified",
	34:  "Circuit/channel congestion",
	38:  "Network out of order",
	41:  "Temporary failure",
	127: "Interworking, unspecified",
}

func causeTxt(c int) string {
	if t, ok := causeText[c]; ok {
		return t
	}
	return "Unknown"
}
