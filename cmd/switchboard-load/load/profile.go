package load

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/auth"
)

// RunProfiledControlPlane is the `controlplane` mode: the control plane
// with the HTTP API and the events service at their defaults, built by controlplane.New as
// `switchboard serve --db --listen --jwt-secret-file` builds it, profiled on signals so each phase of a
// run gets its own profile: SIGUSR1 starts a CPU profile (the next SIGUSR1
// stops it), SIGUSR2 writes a heap profile and a goroutine dump. Files are
// <prefix>-cpu-K.pprof, <prefix>-heap-K.pprof, <prefix>-goroutines-K.txt,
// <prefix>-mem-K.txt
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
	cfg := controlplane.Config{Listen: *listen, DB: *db, Logger: log, Version: "load-profile"}
	if *jwtFile != "" {
		secret, err := auth.LoadHMACSecret(*jwtFile)
		if err != nil {
			return err
		}
		if cfg.API.JWT, err = auth.NewJWTVerifier(auth.JWTConfig{HMACSecret: secret}); err != nil {
			return err
		}
	}
	srv, err := controlplane.New(ctx, cfg)
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
	done := make(chan struct{})
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

// snapshot writes a heap profile (after a GC, so it shows live memory),
// a goroutine dump (where every goroutine waits, aggregated) and the
// runtime's memory classes after that GC (<prefix>-mem-K.txt): live heap
// and goroutine stacks are what each connected agent costs, RSS adds the
// garbage the next GC would collect.
func (p *profiler) snapshot() {
	p.snaps++
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mem := fmt.Sprintf("live heap %d MiB (%d objects), heap in use %d MiB, stacks %d MiB, goroutines %d, next GC at %d MiB, from the OS %d MiB\n",
		ms.HeapAlloc>>20, ms.HeapObjects, ms.HeapInuse>>20, ms.StackInuse>>20, runtime.NumGoroutine(), ms.NextGC>>20, ms.Sys>>20)
	if err := os.WriteFile(p.path("mem", p.snaps, "txt"), []byte(mem), 0o644); err != nil {
		p.log.Error("profile", "err", err)
	}
	// Each file is renamed into place once complete: the load tool waits
	// for the goroutine dump, the last, before its next phase.
	for _, x := range []struct {
		name, ext string
		debug     int
	}{{"heap", "pprof", 0}, {"goroutines", "txt", 1}} {
		path := p.path(x.name, p.snaps, x.ext)
		f, err := os.Create(path + ".tmp")
		if err != nil {
			p.log.Error("profile", "err", err)
			continue
		}
		if err := pprof.Lookup(map[string]string{"heap": "heap", "goroutines": "goroutine"}[x.name]).WriteTo(f, x.debug); err != nil {
			p.log.Error("profile", "err", err)
		}
		f.Close()
		if err := os.Rename(path+".tmp", path); err != nil {
			p.log.Error("profile", "err", err)
		}
	}
}
