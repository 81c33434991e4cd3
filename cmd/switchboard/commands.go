package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
)

// command is one `switchboard …` command. One definition serves running
// it, its --help, the shell completion scripts and its man page, so they
// cannot drift apart.
type command struct {
	// path is the words after "switchboard", e.g. "calls list".
	path string
	// args is the synopsis after the path: required flags and
	// positional arguments, e.g. "--from EXT --to NUMBER" or "ID".
	args string
	// summary is one line for command lists: lower case, no period.
	summary string
	// about is the longer description of --help and the man page:
	// paragraphs separated by blank lines; lines indented by two spaces
	// are examples, printed as they are.
	about string
	group string
	// define registers the command's flags on fs and returns the code
	// to run once they are parsed. Help, completion and man pages call
	// it too, and never run what it returns.
	define func(fs *pflag.FlagSet) action
	// positional completes the positional arguments in shell
	// completion: a list of words, or compFiles/compDirs.
	positional []string
	// selfParsed commands (serve, demo) parse their own arguments, in
	// files this one does not own: define only describes their flags,
	// and the action gets the arguments as given.
	selfParsed bool
}

// action runs a command with its positional arguments (all arguments
// for a selfParsed command).
type action func(ctx context.Context, e *env, args []string) error

// env is what a command may touch of its process.
type env struct {
	stdout, stderr io.Writer
	now            func() time.Time
}

// Groups of the command list, in the order they are shown.
const (
	groupServer  = "Control plane"
	groupTenants = "Tenants and credentials (the control plane's store, on its machine)"
	groupOperate = "Operating (the HTTP API: --server, --token-file)"
	groupTools   = "Tools"
)

var groups = []string{groupServer, groupTenants, groupOperate, groupTools}

// allCommands is every command, in the order of the command list.
func allCommands() []*command {
	var all []*command
	for _, part := range [][]*command{serverCommands(), adminCommands(), operatorCommands(), toolCommands()} {
		all = append(all, part...)
	}
	return all
}

// findCommand matches the longest command path at the start of args.
// Otherwise parent is set when args start with a word that only groups
// commands ("calls"), so the caller can list them.
func findCommand(cmds []*command, args []string) (c *command, rest []string, parent string) {
	if len(args) >= 2 {
		for _, c := range cmds {
			if c.path == args[0]+" "+args[1] {
				return c, args[2:], ""
			}
		}
	}
	if len(args) >= 1 {
		for _, c := range cmds {
			if c.path == args[0] {
				return c, args[1:], ""
			}
		}
		if len(children(cmds, args[0])) > 0 {
			return nil, nil, args[0]
		}
	}
	return nil, nil, ""
}

// children are the commands under a parent word.
func children(cmds []*command, parent string) []*command {
	var out []*command
	for _, c := range cmds {
		if strings.HasPrefix(c.path, parent+" ") {
			out = append(out, c)
		}
	}
	return out
}

// newFlagSet is a command's flag set: errors come back to the caller,
// pflag prints nothing itself, and flags keep their definition order.
func newFlagSet(c *command) (*pflag.FlagSet, action) {
	fs := pflag.NewFlagSet("switchboard "+c.path, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.SortFlags = false
	act := c.define(fs)
	return fs, act
}

// exec parses args and runs the command, or prints its help.
func (c *command) exec(ctx context.Context, e *env, args []string) error {
	fs, act := newFlagSet(c)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, pflag.ErrHelp):
		return c.printHelp(e.stdout)
	case err != nil:
		return usagef("%s: %v (see `switchboard %s --help`)", c.path, err, c.path)
	case c.selfParsed:
		return act(ctx, e, args)
	}
	return act(ctx, e, fs.Args())
}

// usageLine is "switchboard PATH ARGS [flags]".
func (c *command) usageLine(fs *pflag.FlagSet) string {
	s := "switchboard " + c.path
	if c.args != "" {
		s += " " + c.args
	}
	if fs.HasAvailableFlags() {
		s += " [flags]"
	}
	return s
}

// printHelp is --help: usage, description, the command's own flags.
func (c *command) printHelp(w io.Writer) error {
	fs, _ := newFlagSet(c)
	fmt.Fprintf(w, "Usage: %s\n\n%s.\n", c.usageLine(fs), capitalize(c.summary))
	if c.about != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(c.about, "\n"))
	}
	if fs.HasAvailableFlags() {
		fmt.Fprintf(w, "\nFlags:\n%s", flagUsages(c))
	}
	return nil
}

// flagUsages lists the flags one a line, like pflag's FlagUsages but
// without its "[=true|false]" after every boolean.
func flagUsages(c *command) string {
	specs := flagSpecs(c)
	left := make([]string, len(specs))
	width := 0
	for i, f := range specs {
		left[i] = "      --" + f.name
		if f.takesValue() {
			left[i] += " " + f.valueName
		}
		width = max(width, len(left[i]))
	}
	var b strings.Builder
	for i, f := range specs {
		fmt.Fprintf(&b, "%-*s   %s", width, left[i], f.usage)
		if f.def != "" {
			fmt.Fprintf(&b, " (default: %s)", f.def)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// printParentHelp lists the commands under a parent word.
func printParentHelp(w io.Writer, cmds []*command, parent string) {
	fmt.Fprintf(w, "Usage: switchboard %s COMMAND [flags]\n\nCommands:\n", parent)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range children(cmds, parent) {
		fmt.Fprintf(tw, "  %s\t%s\n", c.path, c.summary)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nRun `switchboard %s COMMAND --help` for a command's flags.\n", parent)
}

// printUsage is the list of every command, by group.
func printUsage(w io.Writer, cmds []*command) {
	fmt.Fprint(w, "switchboard — control a fleet of Asterisk PBXs from one API\n\nUsage: switchboard COMMAND [flags]\n")
	width := 0
	for _, c := range cmds {
		width = max(width, len(strings.TrimSpace(c.path+" "+c.args)))
	}
	for _, g := range groups {
		fmt.Fprintf(w, "\n%s:\n", g)
		for _, c := range cmds {
			if c.group == g {
				fmt.Fprintf(w, "  %-*s  %s\n", width, strings.TrimSpace(c.path+" "+c.args), c.summary)
			}
		}
	}
	fmt.Fprint(w, "\nRun `switchboard COMMAND --help` for a command's flags, `switchboard help COMMAND` too.\n")
}

// dispatch finds the command in args and runs it.
func dispatch(ctx context.Context, e *env, args []string) error {
	cmds := allCommands()
	if len(args) == 0 {
		printUsage(e.stderr, cmds)
		return errUsageShown
	}
	switch args[0] {
	case "help", "-h", "--help":
		return helpCmd(e, cmds, args[1:])
	case "--version":
		args = []string{"version"}
	}
	c, rest, parent := findCommand(cmds, args)
	switch {
	case c != nil:
		return c.exec(ctx, e, rest)
	case parent != "" && len(args) > 1 && isHelpFlag(args[1]):
		printParentHelp(e.stdout, cmds, parent)
		return nil
	case parent != "" && len(args) > 1 && !strings.HasPrefix(args[1], "-"):
		return usagef("unknown command %q (see `switchboard %s --help`)", parent+" "+args[1], parent)
	case parent != "":
		printParentHelp(e.stderr, cmds, parent)
		return errUsageShown
	}
	return usagef("unknown command %q (see `switchboard --help`)", args[0])
}

// helpCmd is `switchboard help [COMMAND]`.
func helpCmd(e *env, cmds []*command, args []string) error {
	if len(args) == 0 {
		printUsage(e.stdout, cmds)
		return nil
	}
	c, rest, parent := findCommand(cmds, args)
	switch {
	case c != nil && len(rest) == 0:
		return c.printHelp(e.stdout)
	case parent != "" && len(args) == 1:
		printParentHelp(e.stdout, cmds, parent)
		return nil
	}
	return usagef("help: unknown command %q (see `switchboard --help`)", strings.Join(args, " "))
}

func isHelpFlag(s string) bool { return s == "-h" || s == "--help" || s == "-help" }

// errUsageShown: the usage was printed; exit 2 with nothing more to say.
var errUsageShown = errors.New("usage shown")

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// noArgs refuses positional arguments of a command that takes none.
func noArgs(path string, args []string) error {
	if len(args) > 0 {
		return usagef("%s: unexpected argument %q (see `switchboard %s --help`)", path, args[0], path)
	}
	return nil
}

// Completion hints on flags, read by the completion scripts.
const (
	annotComplete = "switchboard_complete"
	compFiles     = ":files"
	compDirs      = ":dirs"
)

// completeFiles marks flags whose value is a file path.
func completeFiles(fs *pflag.FlagSet, names ...string) {
	for _, n := range names {
		_ = fs.SetAnnotation(n, annotComplete, []string{compFiles})
	}
}

// completeWords marks a flag whose value is one of words.
func completeWords(fs *pflag.FlagSet, name string, words ...string) {
	_ = fs.SetAnnotation(name, annotComplete, words)
}
