package api_test

import (
	"testing"

	"github.com/switchboard-pbx/switchboard/controlplane/controlplanetest"
)

func TestSmoke(t *testing.T) {
	s := controlplanetest.New(t, controlplanetest.Options{})
	s.Enterprise(t, "0367", "june")
	key := s.APIKey(t, "0367")
	p := s.AddPBX(t, "0367")
	r := s.Do(t, "POST", "/v1/calls", key, map[string]any{"from": "150", "to": "+375296254070"})
	t.Logf("%d %s", r.Status, r.Body)
	r = s.Do(t, "GET", "/v1/channels", key, nil)
	t.Logf("%d %s", r.Status, r.Body)
	r = s.Do(t, "GET", "/v1/pbxs", key, nil)
	t.Logf("%d %s", r.Status, r.Body)
	_ = p
}
