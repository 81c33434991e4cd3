package flagfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// EnvName is the environment variable that sets flag name under prefix:
// EnvName("SWITCHBOARD_AGENT", "ami-user") = "SWITCHBOARD_AGENT_AMI_USER".
func EnvName(prefix, name string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Apply sets every flag of fs that was not given on the command line, first
// from the environment (prefix_NAME), then from the config file at path
// (skipped when path is ""). Call it after fs.Parse.
func Apply(fs *pflag.FlagSet, envPrefix, path string) error {
	set := map[string]bool{}
	fs.Visit(func(f *pflag.Flag) { set[f.Name] = true })

	var fileValues map[string]string
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		defer f.Close()
		fileValues, err = Parse(f, path, fs)
		if err != nil {
			return err
		}
	}
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if set[f.Name] {
			return
		}
		env := EnvName(envPrefix, f.Name)
		if v, ok := os.LookupEnv(env); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("environment %s: %w", env, err))
			}
			return
		}
		if v, ok := fileValues[f.Name]; ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: option %s: %w", path, f.Name, err))
			}
		}
	})
	return errors.Join(errs...)
}

// Parse reads `name = value` lines. Names must be flags of fs; the value may
// be wrapped in double quotes to keep leading or trailing spaces.
func Parse(r io.Reader, path string, fs *pflag.FlagSet) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want `name = value`, got %q", path, n, line)
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			value = value[1 : len(value)-1]
		}
		if fs.Lookup(name) == nil || name == "config" {
			return nil, fmt.Errorf("%s:%d: unknown option %q", path, n, name)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%s:%d: option %q given twice", path, n, name)
		}
		out[name] = value
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}
