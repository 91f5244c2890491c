package settings

import (
	"bytes"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

var table = Table{
	{Env: "T_URL", Flag: "t-url", Usage: "a service", Check: Optional(ServiceURL("nats"))},
	{Env: "T_PORT", Flag: "t-port", Default: "4222", Usage: "a port", Check: Port},
	{Env: "T_WAIT", Default: "5s", Usage: "env only", Check: Duration(time.Second, time.Minute)},
	{Env: "T_SIZE", Default: "1024", Check: Size(1, 1<<40)},
	{Env: "T_LIST", Default: "a, b,,c"},
}

func getenv(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadPrecedence(t *testing.T) {
	vs, err := Load("t", table, []string{"--t-port", "9100"}, getenv(map[string]string{"T_PORT": "9200", "T_WAIT": " 7s ", "T_URL": "nats://h:1"}))
	if err != nil {
		t.Fatal(err)
	}
	if vs.Int("T_PORT") != 9100 || vs.Duration("T_WAIT") != 7*time.Second || vs.String("T_URL") != "nats://h:1" || vs.Int64("T_SIZE") != 1024 {
		t.Fatalf("flag should win over env, env over default: port %d wait %v url %q size %d", vs.Int("T_PORT"), vs.Duration("T_WAIT"), vs.String("T_URL"), vs.Int64("T_SIZE"))
	}
	if got := vs.List("T_LIST"); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("List = %q", got)
	}
	// An explicit empty flag overrides the environment.
	if vs, err = Load("t", table, []string{"--t-url="}, getenv(map[string]string{"T_URL": "nats://h:1"})); err != nil || vs.String("T_URL") != "" {
		t.Fatalf("--t-url= : %v %q", err, vs.String("T_URL"))
	}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, map[string]string{"T_PORT": "70000"}, `invalid T_PORT (--t-port) "70000": must be a whole number from 0 to 65535`},
		{[]string{"--t-url=http://h:1"}, nil, `invalid T_URL (--t-url) "http://h:1": scheme must be one of nats://`},
		{nil, map[string]string{"T_WAIT": "1ms"}, `invalid T_WAIT "1ms": must be a duration from 1s to 1m, such as 5s`},
		{[]string{"--t-wait", "2s"}, nil, "flag provided but not defined: -t-wait"}, // env only
		{[]string{"stray"}, nil, `unexpected argument "stray"`},
	}
	for _, tc := range cases {
		_, err := Load("t", table, tc.args, getenv(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q %v: err %v, want one line with %q", tc.args, tc.env, err, tc.want)
		}
	}
}

// Both flag forms, values that look like URLs, and flags after positional
// arguments: what the audit command's hand-written splitter got wrong.
func TestParseInterspersed(t *testing.T) {
	for _, args := range [][]string{
		{"prove", "7", "--t-url", "nats://a:1", "--t-port", "1"},
		{"--t-url=nats://a:1", "prove", "--t-port=1", "7"},
		{"prove", "--t-url", "nats://a:1", "7", "--t-port", "1"},
		{"--t-port", "1", "--t-url", "nats://a:1", "--", "prove", "7"},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		vs := Bind(fs, table, getenv(nil))
		pos, err := Parse(fs, args)
		if err == nil {
			err = vs.Validate()
		}
		if err != nil || !slices.Equal(pos, []string{"prove", "7"}) || vs.String("T_URL") != "nats://a:1" || vs.Int("T_PORT") != 1 {
			t.Errorf("%q: pos %q url %q port %d err %v", args, pos, vs.String("T_URL"), vs.Int("T_PORT"), err)
		}
	}
}

func TestChecks(t *testing.T) {
	cases := []struct {
		c    Check
		good []string
		bad  []string
	}{
		{Bucket, []string{"pulse-media", "a.b-c", "abc"}, []string{"ab", "Bad_Name", "-ab", "ab-", strings.Repeat("a", 64)}},
		{ServiceURL("http", "https"), []string{"http://h:9000", "https://[::1]:1"}, []string{"::bad", "ftp://x:1", "http://host", "http://h:0", "http://:9"}},
		{HTTPURL, []string{"http://h", "https://h:8080/x"}, []string{"ftp://h", "http://u:p@h", "http://h/?q", "/path"}},
		{PathOrURL, []string{"/media", "/media/", "https://h/media"}, []string{"/", "media", "ftp://h", "/m?x", "/a b"}},
		{HostPort, []string{"127.0.0.1:8081", ":0"}, []string{"8081", "h:99999"}},
		{Size(1, 10), []string{"1", "10"}, []string{"0", "11", "x", "-1"}},
		{Duration(time.Second, time.Hour), []string{"1s", "1h"}, []string{"999ms", "61m", "5"}},
		{DurationList(time.Millisecond, time.Hour), []string{"1s,5s, 30s", "1ms"}, []string{"1s,,5s", "1s,2h", "x"}},
		{OneOf("a", "b"), []string{"a"}, []string{"", "c"}},
		{Optional(Port), []string{"", "0", "65535"}, []string{"-1", "x"}},
		{All(NonEmpty, MinLen(3)), []string{"abc"}, []string{"", "ab"}},
	}
	for i, tc := range cases {
		for _, v := range tc.good {
			if err := tc.c(v); err != nil {
				t.Errorf("case %d: %q refused: %v", i, v, err)
			}
		}
		for _, v := range tc.bad {
			if tc.c(v) == nil {
				t.Errorf("case %d: %q accepted", i, v)
			}
		}
	}
}

func TestUsageAndMarkdown(t *testing.T) {
	var u, md bytes.Buffer
	Usage(&u, table)
	Markdown(&md, table, true)
	for _, v := range table {
		if !strings.Contains(u.String(), v.Env) || !strings.Contains(md.String(), "`"+v.Env+"`") {
			t.Errorf("%s missing from -h or the table", v.Env)
		}
	}
	if !strings.Contains(u.String(), "--t-url") || !strings.Contains(md.String(), "| `T_PORT` | `--t-port` | `4222` | a port |") {
		t.Errorf("unexpected output:\n%s\n%s", u.String(), md.String())
	}
}

// -h never shows the environment's values: they may be credentials.
func TestHelpShowsTableDefaults(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	Bind(fs, table, getenv(map[string]string{"T_URL": "nats://secret-host:1", "T_PORT": "1234"}))
	fs.PrintDefaults()
	if strings.Contains(out.String(), "secret-host") || strings.Contains(out.String(), "1234") || !strings.Contains(out.String(), `(default "4222")`) {
		t.Errorf("-h output:\n%s", out.String())
	}
}
