package load

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/auth"
)

// RunProfiledControlPlane is the `controlplane` mode: the control plane
// with the HTTP API at its defaults, as `switchboard serve --db --listen
// --jwt-secret-file` assembles it, with a CPU profile of its whole life
// and a heap profile on SIGUSR1 (sent by the run with every agent
// connected). Profiling stays out of the
// product binary; this is the load tool's own copy of the wiring.
func RunProfiledControlPlane(ctx context.Context, args []string, stderr io.Writer) error {
	fs := pflag.NewFlagSet("controlplane", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", controlplane.DefaultDB, "store DSN")
	listen := fs.String("listen", controlplane.DefaultListen, "listen address")
	jwtFile := fs.String("jwt-secret-file", "", "HS256 secret file")
	logLevel := fs.String("log-level", "warn", "log level")
	cpuFile := fs.String("cpuprofile", "", "write a CPU profile here at exit")
	memFile := fs.String("memprofile", "", "write a heap profile here on SIGUSR1")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*logLevel)); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	ac := api.Config{}
	if *jwtFile != "" {
		secret, err := auth.LoadHMACSecret(*jwtFile)
		if err != nil {
			return err
		}
		if ac.JWT, err = auth.NewJWTVerifier(auth.JWTConfig{HMACSecret: secret}); err != nil {
			return err
		}
	}
	srv, err := controlplane.New(ctx, controlplane.Config{Listen: *listen, DB: *db, Logger: log, Version: "load-profile", Routes: api.Routes(ac)})
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := srv.Listen()
	if err != nil {
		return err
	}
	if *cpuFile != "" {
		f, err := os.Create(*cpuFile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-sctx.Done():
				return
			case <-usr1:
				if err := writeHeap(*memFile); err != nil {
					log.Error("heap profile", "err", err)
				}
			}
		}
	}()
	err = srv.Serve(sctx, ln)
	cancel()
	<-done
	return err
}

func writeHeap(path string) error {
	if path == "" {
		return nil
	}
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	defer f.Close()
	return pprof.Lookup("heap").WriteTo(f, 0)
}
