package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/compose-spec/compose-go/v2/types"
)

// Alloy's own parser (github.com/grafana/alloy/syntax) is not served by the
// module proxy here and no alloy binary is installable, so the test parses
// the Alloy configuration syntax itself (blocks, attributes, literals,
// lists, objects, references, calls: everything config.alloy uses) and
// checks what Alloy would check first: known components, unique labels,
// references to defined components and exports, and regular expressions
// that compile (Alloy uses Go's regexp).

// alloyBlock is a block: name (dotted), optional label, attributes, blocks.
type alloyBlock struct {
	Name, Label string
	Attrs       map[string]any // string, float64, bool, nil, []any, map[string]any, alloyRef, alloyCall
	AttrOrder   []string
	Blocks      []*alloyBlock
	Line        int
}

type alloyRef string // a dotted reference, e.g. loki.process.pulsevault.receiver

type alloyCall struct {
	Fn   alloyRef
	Args []any
}

type alloyParser struct {
	src  []rune
	pos  int
	line int
}

func (p *alloyParser) errf(format string, a ...any) error {
	return fmt.Errorf("line %d: %s", p.line, fmt.Sprintf(format, a...))
}

// skip passes spaces, newlines and comments.
func (p *alloyParser) skip() {
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == '\n':
			p.line++
			p.pos++
		case unicode.IsSpace(c):
			p.pos++
		case c == '/' && p.pos+1 < len(p.src) && p.src[p.pos+1] == '/':
			for p.pos < len(p.src) && p.src[p.pos] != '\n' {
				p.pos++
			}
		case c == '/' && p.pos+1 < len(p.src) && p.src[p.pos+1] == '*':
			end := strings.Index(string(p.src[p.pos+2:]), "*/")
			if end < 0 {
				p.pos = len(p.src)
				return
			}
			chunk := string(p.src[p.pos : p.pos+2+end+2])
			p.line += strings.Count(chunk, "\n")
			p.pos += len([]rune(chunk))
		default:
			return
		}
	}
}

func (p *alloyParser) peek() rune {
	p.skip()
	if p.pos >= len(p.src) {
		return 0
	}
	return p.src[p.pos]
}

func (p *alloyParser) expect(c rune) error {
	if p.peek() != c {
		return p.errf("want %q, found %q", c, p.peek())
	}
	p.pos++
	return nil
}

func (p *alloyParser) ident() (string, error) {
	p.skip()
	start := p.pos
	for p.pos < len(p.src) && (p.src[p.pos] == '_' || unicode.IsLetter(p.src[p.pos]) || (p.pos > start && unicode.IsDigit(p.src[p.pos]))) {
		p.pos++
	}
	if p.pos == start {
		return "", p.errf("want an identifier, found %q", p.peek())
	}
	return string(p.src[start:p.pos]), nil
}

func (p *alloyParser) str() (string, error) {
	p.skip()
	if p.pos >= len(p.src) {
		return "", p.errf("want a string")
	}
	q := p.src[p.pos]
	if q == '`' {
		end := strings.IndexRune(string(p.src[p.pos+1:]), '`')
		if end < 0 {
			return "", p.errf("unterminated raw string")
		}
		s := string(p.src[p.pos+1 : p.pos+1+end])
		p.pos += 2 + len([]rune(s))
		return s, nil
	}
	if q != '"' {
		return "", p.errf("want a string, found %q", q)
	}
	i := p.pos + 1
	for ; i < len(p.src) && p.src[i] != '"'; i++ {
		if p.src[i] == '\\' {
			i++
		}
		if i < len(p.src) && p.src[i] == '\n' {
			return "", p.errf("newline in a string")
		}
	}
	if i >= len(p.src) {
		return "", p.errf("unterminated string")
	}
	s, err := strconv.Unquote(string(p.src[p.pos : i+1]))
	if err != nil {
		return "", p.errf("string %s: %v", string(p.src[p.pos:i+1]), err)
	}
	p.pos = i + 1
	return s, nil
}

// body parses attributes and blocks up to end ('}' or EOF).
func (p *alloyParser) body(b *alloyBlock, end rune) error {
	for {
		c := p.peek()
		if c == end {
			return nil
		}
		if c == 0 {
			return p.errf("unexpected end of file")
		}
		line := p.line
		name, err := p.ident()
		if err != nil {
			return err
		}
		if p.peek() == '=' {
			p.pos++
			v, err := p.expr()
			if err != nil {
				return err
			}
			if _, dup := b.Attrs[name]; dup {
				return p.errf("attribute %s set twice", name)
			}
			b.Attrs[name] = v
			b.AttrOrder = append(b.AttrOrder, name)
			continue
		}
		for p.peek() == '.' {
			p.pos++
			part, err := p.ident()
			if err != nil {
				return err
			}
			name += "." + part
		}
		child := &alloyBlock{Name: name, Attrs: map[string]any{}, Line: line + 1}
		if c := p.peek(); c == '"' || c == '`' {
			if child.Label, err = p.str(); err != nil {
				return err
			}
		}
		if err := p.expect('{'); err != nil {
			return err
		}
		if err := p.body(child, '}'); err != nil {
			return err
		}
		p.pos++
		b.Blocks = append(b.Blocks, child)
	}
}

func (p *alloyParser) expr() (any, error) {
	c := p.peek()
	switch {
	case c == '"' || c == '`':
		return p.str()
	case c == '[':
		p.pos++
		var l []any
		for p.peek() != ']' {
			v, err := p.expr()
			if err != nil {
				return nil, err
			}
			l = append(l, v)
			if p.peek() == ',' {
				p.pos++
			} else if p.peek() != ']' {
				return nil, p.errf("want , or ] in a list, found %q", p.peek())
			}
		}
		p.pos++
		return l, nil
	case c == '{':
		p.pos++
		m := map[string]any{}
		for p.peek() != '}' {
			var k string
			var err error
			if c := p.peek(); c == '"' {
				k, err = p.str()
			} else {
				k, err = p.ident()
			}
			if err != nil {
				return nil, err
			}
			if err := p.expect('='); err != nil {
				return nil, err
			}
			v, err := p.expr()
			if err != nil {
				return nil, err
			}
			if _, dup := m[k]; dup {
				return nil, p.errf("object key %s twice", k)
			}
			m[k] = v
			if p.peek() == ',' {
				p.pos++
			} else if p.peek() != '}' {
				return nil, p.errf("want , or } in an object, found %q", p.peek())
			}
		}
		p.pos++
		return m, nil
	case c == '-' || unicode.IsDigit(c):
		start := p.pos
		p.pos++
		for p.pos < len(p.src) && (unicode.IsDigit(p.src[p.pos]) || p.src[p.pos] == '.') {
			p.pos++
		}
		return strconv.ParseFloat(string(p.src[start:p.pos]), 64)
	}
	name, err := p.ident()
	if err != nil {
		return nil, err
	}
	switch name {
	case "true":
		return true, nil
	case "false":
		return false, nil
	case "null":
		return nil, nil
	}
	for p.pos < len(p.src) && p.src[p.pos] == '.' {
		p.pos++
		part, err := p.ident()
		if err != nil {
			return nil, err
		}
		name += "." + part
	}
	if p.pos < len(p.src) && p.src[p.pos] == '(' {
		p.pos++
		call := alloyCall{Fn: alloyRef(name)}
		for p.peek() != ')' {
			v, err := p.expr()
			if err != nil {
				return nil, err
			}
			call.Args = append(call.Args, v)
			if p.peek() == ',' {
				p.pos++
			}
		}
		p.pos++
		return call, nil
	}
	return alloyRef(name), nil
}

func parseAlloy(src string) (*alloyBlock, error) {
	p := &alloyParser{src: []rune(src)}
	root := &alloyBlock{Attrs: map[string]any{}}
	if err := p.body(root, 0); err != nil {
		return nil, err
	}
	if len(root.Attrs) > 0 {
		return nil, fmt.Errorf("attributes %v outside any block", root.AttrOrder)
	}
	return root, nil
}

// alloyComponents are the components config.alloy may use, with their
// exports and the blocks they take (Alloy's reference documentation).
var alloyComponents = map[string]struct {
	exports []string
	blocks  []string
}{
	"discovery.docker":   {[]string{"targets"}, nil},
	"discovery.relabel":  {[]string{"output", "rules"}, []string{"rule"}},
	"loki.source.docker": {nil, nil},
	"local.file_match":   {[]string{"targets"}, nil},
	"loki.source.file":   {nil, nil},
	"loki.process":       {[]string{"receiver"}, []string{"stage.json", "stage.template", "stage.regex", "stage.labels", "stage.static_labels", "stage.label_keep", "stage.label_drop", "stage.drop", "stage.match", "stage.timestamp"}},
	"loki.write":         {[]string{"receiver"}, []string{"endpoint"}},
}

// allowedLogLabels is the fixed set of Loki labels: none carries an id or PHI.
var allowedLogLabels = []string{"job", "service", "function", "level"}

func readAlloy(t *testing.T) *alloyBlock {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(infraDir(t), "alloy", "config.alloy"))
	if err != nil {
		t.Fatal(err)
	}
	root, err := parseAlloy(string(b))
	if err != nil {
		t.Fatalf("config.alloy: %v", err)
	}
	return root
}

func walkAlloyValues(v any, f func(any)) {
	f(v)
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			walkAlloyValues(e, f)
		}
	case map[string]any:
		for _, e := range x {
			walkAlloyValues(e, f)
		}
	case alloyCall:
		for _, e := range x.Args {
			walkAlloyValues(e, f)
		}
	}
}

func walkAlloyBlocks(b *alloyBlock, f func(*alloyBlock)) {
	f(b)
	for _, c := range b.Blocks {
		walkAlloyBlocks(c, f)
	}
}

// TestAlloyConfigParses: known components with unique labels, references to
// defined components' exports only, every regular expression compiles, and
// logs flow source → loki.process → loki.write.
func TestAlloyConfigParses(t *testing.T) {
	t.Parallel()
	root := readAlloy(t)
	defined := map[string]string{} // "name.label" → name
	for _, c := range root.Blocks {
		spec, ok := alloyComponents[c.Name]
		if !ok {
			t.Errorf("line %d: unknown component %s", c.Line, c.Name)
			continue
		}
		if c.Label == "" {
			t.Errorf("line %d: %s has no label", c.Line, c.Name)
		}
		if _, dup := defined[c.Name+"."+c.Label]; dup {
			t.Errorf("line %d: %s %q defined twice", c.Line, c.Name, c.Label)
		}
		defined[c.Name+"."+c.Label] = c.Name
		for _, sub := range c.Blocks {
			if !slices.Contains(spec.blocks, sub.Name) {
				t.Errorf("line %d: %s takes no block %s", sub.Line, c.Name, sub.Name)
			}
		}
	}
	if len(defined) < 5 {
		t.Fatalf("only %d components", len(defined))
	}
	feeds := map[string][]string{} // receiver component → who forwards to it
	walkAlloyBlocks(root, func(b *alloyBlock) {
		for _, a := range b.AttrOrder {
			walkAlloyValues(b.Attrs[a], func(v any) {
				switch x := v.(type) {
				case alloyCall:
					if x.Fn != "sys.env" {
						t.Errorf("line %d: call of %s", b.Line, x.Fn)
					}
				case alloyRef:
					parts := strings.Split(string(x), ".")
					if len(parts) < 3 {
						t.Errorf("line %d: reference %s", b.Line, x)
						return
					}
					comp := strings.Join(parts[:len(parts)-1], ".")
					name, ok := defined[comp]
					if !ok {
						t.Errorf("line %d: %s refers to no defined component", b.Line, x)
						return
					}
					if export := parts[len(parts)-1]; !slices.Contains(alloyComponents[name].exports, export) {
						t.Errorf("line %d: %s exports no %s", b.Line, name, export)
					}
					if a == "forward_to" {
						feeds[comp] = append(feeds[comp], b.Name+"."+b.Label)
					}
				}
			})
			if a == "regex" || a == "expression" {
				if s, ok := b.Attrs[a].(string); ok {
					if _, err := regexp.Compile(s); err != nil {
						t.Errorf("line %d: %s %q: %v", b.Line, a, s, err)
					}
				}
			}
		}
	})
	// Every source forwards to a loki.process; only loki.process forwards to loki.write.
	for comp, from := range feeds {
		for _, f := range from {
			switch {
			case strings.HasPrefix(comp, "loki.write."):
				if !strings.HasPrefix(f, "loki.process.") {
					t.Errorf("%s writes to Loki without loki.process (the label filter)", f)
				}
			case strings.HasPrefix(comp, "loki.process."):
				if !strings.HasPrefix(f, "loki.source.") {
					t.Errorf("%s forwards to %s", f, comp)
				}
			}
		}
	}
	sources := 0
	for _, c := range root.Blocks {
		if strings.HasPrefix(c.Name, "loki.source.") {
			sources++
			if _, ok := c.Attrs["forward_to"]; !ok {
				t.Errorf("%s %q forwards nowhere", c.Name, c.Label)
			}
		}
		if c.Name == "loki.write" {
			var url any
			for _, e := range c.Blocks {
				url = e.Attrs["url"]
			}
			if call, ok := url.(alloyCall); !ok || call.Fn != "sys.env" || len(call.Args) != 1 || call.Args[0] != "LOKI_URL" {
				t.Errorf("loki.write's url is %v, want sys.env(\"LOKI_URL\") (compose.yaml sets it)", url)
			}
		}
	}
	if sources < 2 {
		t.Errorf("%d log sources, want the containers and nginx's access log", sources)
	}
}

// TestAlloyLabelsAllowed: every label a source, a relabel rule or a stage
// sets is in the allowed set, each loki.process ends with a label_keep of
// exactly that set, and the function label's values are stack.yml's names.
func TestAlloyLabelsAllowed(t *testing.T) {
	t.Parallel()
	root := readAlloy(t)
	allowed := func(l string) bool { return slices.Contains(allowedLogLabels, l) }
	processes := 0
	walkAlloyBlocks(root, func(b *alloyBlock) {
		switch b.Name {
		case "rule":
			if l, ok := b.Attrs["target_label"].(string); ok && !strings.HasPrefix(l, "__") && !allowed(l) {
				t.Errorf("line %d: relabel sets label %s, not in %v", b.Line, l, allowedLogLabels)
			}
			if act, _ := b.Attrs["action"].(string); act == "labelmap" {
				t.Errorf("line %d: labelmap copies labels wholesale", b.Line)
			}
		case "local.file_match":
			for _, tg := range b.Attrs["path_targets"].([]any) {
				for k := range tg.(map[string]any) {
					if !strings.HasPrefix(k, "__") && !allowed(k) {
						t.Errorf("line %d: file target label %s, not in %v", b.Line, k, allowedLogLabels)
					}
				}
			}
		case "loki.source.docker", "loki.source.file":
			if _, ok := b.Attrs["labels"]; ok {
				t.Errorf("line %d: %s sets labels itself", b.Line, b.Name)
			}
		case "stage.labels", "stage.static_labels":
			for k := range b.Attrs["values"].(map[string]any) {
				if !allowed(k) {
					t.Errorf("line %d: %s sets %s, not in %v", b.Line, b.Name, k, allowedLogLabels)
				}
			}
		case "stage.regex":
			re := regexp.MustCompile(b.Attrs["expression"].(string))
			for _, g := range re.SubexpNames()[1:] {
				if g != "" && !allowed(g) {
					t.Errorf("line %d: regex extracts %s", b.Line, g)
				}
			}
		case "loki.process":
			processes++
			last := b.Blocks[len(b.Blocks)-1]
			var keep []string
			for _, v := range toAnyStrings(last.Attrs["values"]) {
				keep = append(keep, v)
			}
			slices.Sort(keep)
			want := slices.Clone(allowedLogLabels)
			slices.Sort(want)
			if last.Name != "stage.label_keep" || !slices.Equal(keep, want) {
				t.Errorf("loki.process %q ends with %s %v, want stage.label_keep of exactly %v", b.Label, last.Name, keep, want)
			}
		}
	})
	if processes == 0 {
		t.Fatal("no loki.process")
	}
	// The function label takes stack.yml's function names only, from a fixed list.
	var fnRe string
	walkAlloyBlocks(root, func(b *alloyBlock) {
		if b.Name == "stage.regex" && strings.Contains(b.Attrs["expression"].(string), "?P<function>") {
			fnRe = b.Attrs["expression"].(string)
		}
	})
	re := regexp.MustCompile(fnRe)
	for fn := range readStack(t).Functions {
		if !re.MatchString("fn/" + fn) {
			t.Errorf("the function label does not take %s", fn)
		}
	}
	for _, bad := range []string{"fn/0b8c2f9e-1d2a-4c3b-9e8f-7a6b5c4d3e2f", "fn/anything", "fn/upload/x"} {
		if re.MatchString(bad) {
			t.Errorf("the function label takes %q", bad)
		}
	}
	// compose.yaml runs this file with LOKI_URL.
	alloy, ok := loadCompose(t, composeEnv).DisabledServices["alloy"] // profile "logs": opt-in
	if !ok {
		t.Fatal("compose.yaml has no alloy service in a profile")
	}
	if alloy.Environment["LOKI_URL"] == nil || !slices.ContainsFunc(alloy.Volumes, func(v types.ServiceVolumeConfig) bool {
		return strings.HasSuffix(v.Source, filepath.Join("infra", "alloy", "config.alloy")) && v.ReadOnly
	}) {
		t.Error("compose.yaml's alloy service does not run infra/alloy/config.alloy with LOKI_URL")
	}
}

func toAnyStrings(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, e := range l {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// TestAlloyDashboardLogs: the dashboard's Loki panels select streams by
// allowed labels only and find a request by request_id in the line (after
// | json), never by a label; the Loki data source is an input.
func TestAlloyDashboardLogs(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(infraDir(t), "grafana", "pulsevault-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Inputs []struct{ Name, PluginID string } `json:"__inputs"`
		Panels []struct {
			Type, Title string
			Datasource  struct{ Type, UID string } `json:"datasource"`
			Targets     []struct{ Expr string }    `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct{ Name, Type string } `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(d.Inputs, func(i struct{ Name, PluginID string }) bool { return i.Name == "DS_LOKI" && i.PluginID == "loki" }) {
		t.Error("no DS_LOKI input")
	}
	if !slices.ContainsFunc(d.Templating.List, func(v struct{ Name, Type string }) bool { return v.Name == "request_id" && v.Type == "textbox" }) {
		t.Error("no request_id textbox variable")
	}
	selector := regexp.MustCompile(`^\{([^}]*)\}`)
	matcher := regexp.MustCompile(`([a-z_]+)\s*(=~|!~|!=|=)\s*"[^"]*"`)
	logs, byRequest := 0, false
	for _, p := range d.Panels {
		if p.Datasource.Type != "loki" {
			continue
		}
		if p.Datasource.UID != "${DS_LOKI}" {
			t.Errorf("panel %q: data source %q", p.Title, p.Datasource.UID)
		}
		if p.Type == "logs" {
			logs++
		}
		for _, tg := range p.Targets {
			expr := tg.Expr
			if i := strings.Index(expr, "{"); i > 0 { // inside a metric query
				expr = expr[i:]
			}
			m := selector.FindStringSubmatch(expr)
			if m == nil {
				t.Errorf("panel %q: no stream selector in %q", p.Title, tg.Expr)
				continue
			}
			for _, lm := range matcher.FindAllStringSubmatch(m[1], -1) {
				if !slices.Contains(allowedLogLabels, lm[1]) {
					t.Errorf("panel %q selects by label %s, not in %v", p.Title, lm[1], allowedLogLabels)
				}
			}
			if j := strings.Index(tg.Expr, "request_id"); j >= 0 {
				if k := strings.Index(tg.Expr, "| json"); k < 0 || k > j {
					t.Errorf("panel %q: request_id before | json: %q", p.Title, tg.Expr)
				}
				byRequest = byRequest || strings.Contains(tg.Expr, `request_id="$request_id"`)
			}
		}
	}
	if logs < 2 || !byRequest {
		t.Errorf("%d logs panels (want 2+), by request id: %v", logs, byRequest)
	}
}
