// Package settings is PulseVault's one way to declare and read
// configuration. A package declares its variables once, as a table of Var
// (environment variable, optional flag, default, usage, validator); Load
// reads the table from the environment and, for variables with a flag, from
// the command line, and validates every value, so that defaults, -h output,
// the README's tables and validation cannot drift apart. A bad value stops
// the process with one line naming the variable and what it accepts.
package settings

// Var is one setting.
type Var struct {
	Env     string // environment variable, e.g. S3_ENDPOINT
	Flag    string // command-line flag without dashes, e.g. s3-endpoint; empty: environment only
	Default string // used when neither the flag nor the environment gives a value
	Usage   string // one line for -h and the README
	Check   Check  // validates the value (the default included); nil accepts anything
}

// Setting is the former name of Var.
//
// Deprecated: use Var.
type Setting = Var

// Table is an ordered list of settings: the order of -h and the README.
type Table []Var

// Lookup returns the setting named env.
func (t Table) Lookup(env string) (Var, bool) {
	for _, v := range t {
		if v.Env == env {
			return v, true
		}
	}
	return Var{}, false
}

// Join concatenates tables, for a command or a README section that covers
// several packages' settings; a setting two of them include (one
// declaration, shared) appears once, where it comes first.
func Join(tables ...Table) Table {
	var out Table
	for _, t := range tables {
		for _, v := range t {
			if _, dup := out.Lookup(v.Env); !dup {
				out = append(out, v)
			}
		}
	}
	return out
}
