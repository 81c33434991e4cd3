package events_test

import (
	"testing"

	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }
