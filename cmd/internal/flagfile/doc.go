// Package flagfile fills a command's pflag flags from the environment and
// from a config file of `name = value` lines, so an operator can set any
// option in whichever place suits them: flags win over the environment,
// which wins over the file, which wins over the built-in defaults.
//
// The file format is deliberately tiny: one option per line, the long flag
// name without its dashes, `=`, the value; `#` starts a comment line; blank
// lines are ignored. Unknown names are errors, with the line number, so a
// typo never silently falls back to a default.
package flagfile
