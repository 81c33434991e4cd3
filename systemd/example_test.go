package systemd_test

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/switchboard-pbx/switchboard/systemd"
)

// A daemon's main: report ready once listening, keep the watchdog fed for as
// long as the daemon runs, and say STOPPING before draining. Every call is a
// no-op outside systemd.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	tokenFile := "/etc/switchboard/agent.token"
	if p, ok := systemd.Credential("token"); ok {
		tokenFile = p // LoadCredential=token:… in the unit
	}
	_ = tokenFile

	g, ctx := errgroup.WithContext(ctx)
	// … start listeners and workers in g here …
	if d, ok := systemd.WatchdogInterval(); ok {
		g.Go(func() error { return systemd.RunWatchdog(ctx, d) })
	}
	if _, err := systemd.Ready(); err != nil {
		log.Warn("sd_notify READY", "err", err)
	}

	<-ctx.Done()
	if _, err := systemd.Stopping(); err != nil {
		log.Warn("sd_notify STOPPING", "err", err)
	}
	if err := g.Wait(); err != nil {
		log.Error("daemon stopped", "err", err)
	}
}
