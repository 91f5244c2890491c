package settings

import (
	"fmt"
	"io"
	"strings"
)

// Usage writes t with its defaults, one setting a line, for -h.
func Usage(w io.Writer, t Table) {
	for _, v := range t {
		if v.Flag != "" {
			fmt.Fprintf(w, "  --%-22s %-22s %s (default %q)\n", v.Flag, v.Env, v.Usage, v.Default)
		} else {
			fmt.Fprintf(w, "  %-24s %s (default %q)\n", v.Env, v.Usage, v.Default)
		}
	}
}

// Markdown writes t as the README's table: variable, flag (when withFlags),
// default and meaning. The README's tables are this output, and a test
// keeps them so.
func Markdown(w io.Writer, t Table, withFlags bool) {
	if withFlags {
		fmt.Fprintln(w, "| variable | flag | default | meaning |")
		fmt.Fprintln(w, "|---|---|---|---|")
	} else {
		fmt.Fprintln(w, "| variable | default | meaning |")
		fmt.Fprintln(w, "|---|---|---|")
	}
	for _, v := range t {
		def := "(empty)"
		if v.Default != "" {
			def = "`" + v.Default + "`"
		}
		usage := strings.ReplaceAll(v.Usage, "|", `\|`)
		if withFlags {
			flag := ""
			if v.Flag != "" {
				flag = "`--" + v.Flag + "`"
			}
			fmt.Fprintf(w, "| `%s` | %s | %s | %s |\n", v.Env, flag, def, usage)
		} else {
			fmt.Fprintf(w, "| `%s` | %s | %s |\n", v.Env, def, usage)
		}
	}
}
