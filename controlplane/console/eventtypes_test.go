package console_test

import (
	"regexp"
	"slices"
	"testing"

	consolefiles "github.com/switchboard-pbx/switchboard/controlplane/console"
	"github.com/switchboard-pbx/switchboard/controlplane/events"
)

// TestWebhookEventTypes keeps the webhook form's event checkboxes equal to
// the types the API accepts, so a new event type is offered by the
// console too.
func TestWebhookEventTypes(t *testing.T) {
	f, ok := consolefiles.Lookup("/assets/js/webhooks.js")
	if !ok {
		t.Fatal("webhooks.js is not embedded")
	}
	list := regexp.MustCompile(`(?s)const EVENT_TYPES = \[(.*?)\];`).FindSubmatch(f.Body)
	if list == nil {
		t.Fatal("webhooks.js has no EVENT_TYPES list")
	}
	var got []string
	for _, m := range regexp.MustCompile(`'([^']+)'`).FindAllSubmatch(list[1], -1) {
		got = append(got, string(m[1]))
	}
	want := slices.Clone(events.EventTypes)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("the webhook form offers %q; the API accepts %q", got, want)
	}
}
