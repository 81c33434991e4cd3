package asterisktest

import (
	"context"
	"testing"
)

// Require starts the Asterisk the environment asks for (FromEnv) and
// stops it when the test ends. With no Asterisk asked for it skips the
// test with SkipMessage; asked for but unable to start, it fails the test:
// a broken lab must never look like a green run.
func Require(tb testing.TB) *PBX {
	tb.Helper()
	cfg, ok := FromEnv()
	if !ok {
		tb.Skip(SkipMessage)
	}
	p, err := Start(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("a real Asterisk was asked for (%s=%q, %s=%q) but did not start: %v", EnvLab, cfg.Lab, EnvBinary, cfg.Binary, err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("--- end of Asterisk's console (%s) ---\n%s", p.Dir(), p.ConsoleLog(8192))
		}
		if err := p.Close(); err != nil {
			tb.Errorf("stop Asterisk: %v", err)
		}
	})
	return p
}
