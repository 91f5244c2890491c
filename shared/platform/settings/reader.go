package settings

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Values is a table read from the environment and flags. Its getters
// return a validated value, so after Validate (or Load) they cannot fail.
type Values struct {
	table Table
	raw   map[string]*string
}

// Bind declares a flag on fs for every setting of t that has one (both
// --name value and --name=value work: it is the standard flag package),
// with the environment's value, else the table's default, as the flag's
// default: flags win over the environment. Call Validate after fs.Parse.
func Bind(fs *flag.FlagSet, t Table, getenv func(string) string) *Values {
	vs := &Values{table: t, raw: make(map[string]*string, len(t))}
	for _, v := range t {
		val := v.Default
		if e := strings.TrimSpace(getenv(v.Env)); e != "" {
			val = e
		}
		if v.Flag == "" {
			vs.raw[v.Env] = &val
			continue
		}
		vs.raw[v.Env] = fs.String(v.Flag, val, v.Usage+" (env "+v.Env+")")
		// -h shows the table's default, never what the environment holds
		// (a credential, say).
		fs.Lookup(v.Flag).DefValue = v.Default
	}
	return vs
}

// Validate checks every value in table order and returns the first failure
// as one line: invalid ENV (--flag) "value": what it accepts.
func (vs *Values) Validate() error {
	for _, v := range vs.table {
		p := vs.raw[v.Env]
		*p = strings.TrimSpace(*p)
		if v.Check == nil {
			continue
		}
		if err := v.Check(*p); err != nil {
			return Invalid(v, *p, err)
		}
	}
	return nil
}

// Invalid is the one-line error for value of v: invalid ENV (--flag)
// "value": why. Loaders use it for checks across several settings.
func Invalid(v Var, value string, why error) error {
	name := v.Env
	if v.Flag != "" {
		name += " (--" + v.Flag + ")"
	}
	msg := why.Error()
	var ex exampleError
	if errors.As(why, &ex) && v.Default != "" {
		msg += ", such as " + v.Default
	}
	return fmt.Errorf("invalid %s %q: %s", name, value, msg)
}

// Load reads t through getenv and args (flags only: a positional argument
// is an error) and validates it. name prefixes flag errors.
func Load(name string, t Table, args []string, getenv func(string) string) (*Values, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	vs := Bind(fs, t, getenv)
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%s: %v (run with -h for the settings)", name, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%s: unexpected argument %q", name, fs.Arg(0))
	}
	if err := vs.Validate(); err != nil {
		return nil, err
	}
	return vs, nil
}

// FromEnv is Load of t through getenv with no flags, for a function's own
// settings.
func FromEnv(t Table, getenv func(string) string) (*Values, error) {
	return Load("settings", t, nil, getenv)
}

// Parse is fs.Parse that also accepts flags after positional arguments
// (pulsevault audit prove SEQ --from-dir DIR) and returns the positional
// ones; "--" ends the flags.
func Parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// fs.Parse stops at the first non-flag, or after "--".
		if len(args) >= len(rest)+1 && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// String is env's value, surrounding space trimmed.
func (vs *Values) String(env string) string {
	p, ok := vs.raw[env]
	if !ok {
		panic("settings: " + env + " is not declared in this table")
	}
	return *p
}

// Int is env's value as a whole number (0 if it is none: give it a Check).
func (vs *Values) Int(env string) int {
	n, _ := strconv.Atoi(vs.String(env))
	return n
}

// Int64 is env's value as a 64-bit whole number, e.g. a size in bytes.
func (vs *Values) Int64(env string) int64 {
	n, _ := strconv.ParseInt(vs.String(env), 10, 64)
	return n
}

// Duration is env's value as a duration.
func (vs *Values) Duration(env string) time.Duration {
	d, _ := time.ParseDuration(vs.String(env))
	return d
}

// List is env's value split at commas, each item trimmed, empty ones dropped.
func (vs *Values) List(env string) []string {
	var out []string
	for s := range strings.SplitSeq(vs.String(env), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Durations is env's value as comma-separated durations.
func (vs *Values) Durations(env string) []time.Duration {
	var out []time.Duration
	for _, s := range vs.List(env) {
		d, _ := time.ParseDuration(s)
		out = append(out, d)
	}
	return out
}
