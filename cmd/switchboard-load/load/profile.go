package load

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/events"
)

// RunProfiledControlPlane is the `controlplane` mode: the control plane
// with the HTTP API and the events service at their defaults, as `switchboard serve --db --listen
// --jwt-secret-file` assembles it, profiled on signals so each phase of a
// run gets its own profile: SIGUSR1 starts a CPU profile (the next SIGUSR1
// stops it), SIGUSR2 writes a heap profile and a goroutine dump. Files are
// <prefix>-cpu-K.pprof, <prefix>-heap-K.pprof, <prefix>-goroutines-K.txt
// in --profile-dir. Profiling stays out of the product binary; this is
// the load tool's own copy of serve's wiring.
func RunProfiledControlPlane(ctx context.Context, args []string, stderr io.Writer) error {
	fs := pflag.NewFlagSet("controlplane", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", controlplane.DefaultDB, "store DSN")
	listen := fs.String("listen", controlplane.DefaultListen, "listen address")
	jwtFile := fs.String("jwt-secret-file", "", "HS256 secret file")
	logLevel := fs.String("log-level", "warn", "log level")
	dir := fs.String("profile-dir", ".", "where profiles go")
	prefix := fs.String("profile-prefix", "cp", "profile file name prefix")
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
	ev, err := events.New(events.Config{JWT: ac.JWT})
	if err != nil {
		return err
	}
	apiRoutes := api.Routes(ac)
	routes := func(mux *http.ServeMux, s *controlplane.Server) error {
		if err := apiRoutes(mux, s); err != nil {
			return err
		}
		return ev.Routes(mux, s)
	}
	srv, err := controlplane.New(ctx, controlplane.Config{Listen: *listen, DB: *db, Logger: log, Version: "load-profile", Routes: routes})
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := srv.Listen()
	if err != nil {
		return err
	}
	p := &profiler{dir: *dir, prefix: *prefix, log: log}
	defer p.stopCPU()
	usr1, usr2 := make(chan os.Signal, 1), make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	signal.Notify(usr2, syscall.SIGUSR2)
	defer signal.Stop(usr1)
	defer signal.Stop(usr2)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done, ran := make(chan struct{}), make(chan error, 1)
	go func() { ran <- ev.Run(sctx) }()
	go func() {
		defer close(done)
		for {
			select {
			case <-sctx.Done():
				return
			case <-usr1:
				p.toggleCPU()
			case <-usr2:
				p.snapshot()
			}
		}
	}()
	err = srv.Serve(sctx, ln)
	cancel()
	<-done
	if rerr := <-ran; err == nil {
		err = rerr
	}
	return err
}

// profiler writes the numbered profiles.
type profiler struct {
	dir, prefix string
	log         *slog.Logger
	cpu         *os.File
	cpus, snaps int
}

func (p *profiler) path(kind string, n int, ext string) string {
	return filepath.Join(p.dir, fmt.Sprintf("%s-%s-%d.%s", p.prefix, kind, n, ext))
}

func (p *profiler) toggleCPU() {
	if p.cpu != nil {
		p.stopCPU()
		return
	}
	p.cpus++
	f, err := os.Create(p.path("cpu", p.cpus, "pprof"))
	if err != nil {
		p.log.Error("cpu profile", "err", err)
		return
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		p.log.Error("cpu profile", "err", err)
		return
	}
	p.cpu = f
}

func (p *profiler) stopCPU() {
	if p.cpu == nil {
		return
	}
	pprof.StopCPUProfile()
	p.cpu.Close()
	p.cpu = nil
}

// snapshot writes a heap profile (after a GC, so it shows live memory)
// and a goroutine dump (where every goroutine waits, aggregated).
func (p *profiler) snapshot() {
	p.snaps++
	runtime.GC()
	for _, x := range []struct {
		name, ext string
		debug     int
	}{{"heap", "pprof", 0}, {"goroutines", "txt", 1}} {
		f, err := os.Create(p.path(x.name, p.snaps, x.ext))
		if err != nil {
			p.log.Error("profile", "err", err)
			continue
		}
		if err := pprof.Lookup(map[string]string{"heap": "heap", "goroutines": "goroutine"}[x.name]).WriteTo(f, x.debug); err != nil {
			p.log.Error("profile", "err", err)
		}
		f.Close()
	}
}
