// Package bench holds the arithmetic and bookkeeping of `make bench`: each
// figure is measured side by side with its baseline, alternating A B A B
// over several rounds on the same machine, and reported as the median
// ratio with its spread, so that a noisy shared machine moves both sides
// of a ratio together instead of moving the figure.
package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Pair is one round: the figure and its baseline, measured back to back.
// Baseline is 0 for absolute figures.
type Pair struct {
	Result   float64 `json:"result"`
	Baseline float64 `json:"baseline,omitempty"`
}

// Alternate runs a then b, rounds times, and returns every round. b may be
// nil for a figure without baseline.
func Alternate(rounds int, a, b func() (float64, error)) ([]Pair, error) {
	out := make([]Pair, 0, rounds)
	for i := range rounds {
		var p Pair
		var err error
		if p.Result, err = a(); err != nil {
			return out, fmt.Errorf("round %d: %w", i+1, err)
		}
		if b != nil {
			if p.Baseline, err = b(); err != nil {
				return out, fmt.Errorf("round %d, baseline: %w", i+1, err)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// Quantile is the q-quantile (0..1) of xs by linear interpolation; NaN when
// xs is empty.
func Quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(s)-1)
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}

// Median is Quantile(xs, 0.5).
func Median(xs []float64) float64 { return Quantile(xs, 0.5) }

// MedianRatio is the median of the rounds' Result/Baseline ratios (not the
// ratio of the medians): each round's pair shares that round's machine
// state. Figure.Compute reports it as Ratio.
func MedianRatio(rounds []Pair) float64 {
	r := make([]float64, len(rounds))
	for i, p := range rounds {
		r[i] = p.Result / p.Baseline
	}
	return Median(r)
}

// Goal is what a figure should reach: its ratio to the baseline (or its
// value, for absolute figures) compared with Value.
type Goal struct {
	AtMost bool    `json:"at_most"` // true: <= Value; false: >= Value
	Value  float64 `json:"value"`
}

func (g Goal) String() string {
	op := ">="
	if g.AtMost {
		op = "<="
	}
	return op + " " + strconv.FormatFloat(g.Value, 'g', -1, 64)
}

func (g Goal) met(v float64) bool {
	if g.AtMost {
		return v <= g.Value
	}
	return v >= g.Value
}

// Figure is one line of the report.
type Figure struct {
	Section      string  `json:"section"`
	Name         string  `json:"figure"`
	Unit         string  `json:"unit"`
	BaselineName string  `json:"baseline_name,omitempty"` // empty: an absolute figure
	Rounds       []Pair  `json:"rounds"`
	Goal         Goal    `json:"goal"`
	Notes        string  `json:"notes,omitempty"`
	Result       float64 `json:"result"`             // median over rounds
	Baseline     float64 `json:"baseline,omitempty"` // median over rounds
	// Ratio is the median of the per-round ratios (not the ratio of the
	// medians): each round's pair shares that round's machine state.
	Ratio    float64 `json:"ratio,omitempty"`
	Low      float64 `json:"low"`  // smallest per-round value the goal is judged on
	High     float64 `json:"high"` // largest
	Met      bool    `json:"met"`
	Measured bool    `json:"measured"` // every round produced a finite, positive number
}

// Compute fills the medians, ratio, spread and verdict from the rounds.
func (f *Figure) Compute() {
	var res, base, judged []float64
	for _, p := range f.Rounds {
		res = append(res, p.Result)
		base = append(base, p.Baseline)
		if f.BaselineName != "" {
			judged = append(judged, p.Result/p.Baseline)
		} else {
			judged = append(judged, p.Result)
		}
	}
	f.Measured = len(judged) > 0
	for _, v := range append(slices.Clone(res), judged...) {
		if math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
			f.Measured = false
		}
	}
	if !f.Measured {
		return
	}
	f.Result = Median(res)
	v := f.Result
	if f.BaselineName != "" {
		f.Baseline = Median(base)
		f.Ratio = Median(judged)
		v = f.Ratio
	}
	f.Low, f.High = slices.Min(judged), slices.Max(judged)
	f.Met = f.Goal.met(v)
}

// Process is what one function process cost over a section.
type Process struct {
	Section  string  `json:"section"`
	Function string  `json:"function"`
	CPU      float64 `json:"cpu_seconds"` // user + system, its reaped children (ffmpeg) included
	PeakRSS  int64   `json:"peak_rss_bytes"`
	// PerMediaSecond is CPU over the seconds of video it processed (0 when
	// the function does not process video).
	PerMediaSecond float64 `json:"cpu_seconds_per_media_second,omitempty"`
}

// Machine says where the figures were taken.
type Machine struct {
	CPUs   int    `json:"nproc"`
	Model  string `json:"model_name"`
	Go     string `json:"go"`
	Kernel string `json:"kernel,omitempty"`
}

// DescribeMachine reads this machine's description.
func DescribeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for l := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// Report is the whole run, as written to bench/results.json.
type Report struct {
	Mode      string    `json:"mode"` // quick or full
	Rounds    int       `json:"rounds"`
	Machine   Machine   `json:"machine"`
	Started   time.Time `json:"started"`
	Seconds   float64   `json:"seconds"`
	Figures   []Figure  `json:"figures"`
	Processes []Process `json:"processes"`
}

// Add computes f and appends it.
func (r *Report) Add(f Figure) *Figure {
	f.Compute()
	r.Figures = append(r.Figures, f)
	return &r.Figures[len(r.Figures)-1]
}

// Check names every wanted figure (by Name) that is missing or did not
// produce a number: the smoke test of `make bench-quick`, which judges
// presence, not goals.
func (r *Report) Check(want ...string) error {
	var errs []error
	for _, w := range want {
		i := slices.IndexFunc(r.Figures, func(f Figure) bool { return f.Name == w })
		switch {
		case i < 0:
			errs = append(errs, fmt.Errorf("bench: %s: no figure", w))
		case !r.Figures[i].Measured:
			errs = append(errs, fmt.Errorf("bench: %s: no usable number in %v", w, r.Figures[i].Rounds))
		}
	}
	return errors.Join(errs...)
}

// WriteJSON writes the report to path, creating its directory.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Table writes the report as Markdown tables (figures, then processes), so
// that the README can take it as is.
func (r *Report) Table(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "machine: %d CPUs, %s, %s, kernel %s; mode %s, %d rounds A B A B, %.0f s\n\n",
		r.Machine.CPUs, r.Machine.Model, r.Machine.Go, r.Machine.Kernel, r.Mode, r.Rounds, r.Seconds)
	// Debug mode puts a bar after every cell: with a leading "| " the rows
	// are Markdown table rows.
	tw := tabwriter.NewWriter(bw, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "| figure\t result\t baseline\t ratio [min–max]\t goal\t met\t")
	fmt.Fprintln(tw, "|---\t---\t---\t---\t---\t---\t")
	for _, f := range r.Figures {
		if !f.Measured {
			fmt.Fprintf(tw, "| %s\t no number\t \t \t %s\t missed\t\n", f.Name, f.Goal)
			continue
		}
		base, ratio, goal := "—", "—", f.Goal.String()
		if f.BaselineName != "" {
			base = fmt.Sprintf("%s %s (%s)", num(f.Baseline), f.Unit, f.BaselineName)
			ratio = fmt.Sprintf("%.2f× [%.2f–%.2f]", f.Ratio, f.Low, f.High)
			goal += "×"
		} else {
			ratio = fmt.Sprintf("— [%s–%s]", num(f.Low), num(f.High))
			goal += " " + f.Unit
		}
		met := "missed"
		if f.Met {
			met = "met"
		}
		fmt.Fprintf(tw, "| %s\t %s %s\t %s\t %s\t %s\t %s\t\n", f.Name, num(f.Result), f.Unit, base, ratio, goal, met)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Processes) > 0 {
		fmt.Fprintln(bw)
		tw = tabwriter.NewWriter(bw, 0, 0, 1, ' ', tabwriter.Debug)
		fmt.Fprintln(tw, "| section\t function\t CPU s\t CPU s per media s\t peak RSS MiB\t")
		fmt.Fprintln(tw, "|---\t---\t---\t---\t---\t")
		for _, p := range r.Processes {
			per := "—"
			if p.PerMediaSecond > 0 {
				per = fmt.Sprintf("%.2f", p.PerMediaSecond)
			}
			fmt.Fprintf(tw, "| %s\t %s\t %.2f\t %s\t %.1f\t\n", p.Section, p.Function, p.CPU, per, float64(p.PeakRSS)/(1<<20))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, f := range r.Figures {
		if f.Notes != "" {
			fmt.Fprintf(bw, "\n%s: %s", f.Name, f.Notes)
		}
	}
	fmt.Fprintln(bw)
	return bw.Flush()
}

// num prints a figure with three significant digits, without exponents.
func num(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

// userHZ is the unit of /proc/<pid>/stat times: USER_HZ, 100 on every
// Linux architecture Go supports.
const userHZ = 100

// Usage is a process's CPU seconds so far (user + system, plus reaped
// children such as ffmpeg runs), its peak resident set (VmHWM) and its
// resident set now (VmRSS: a peak never falls, so growth over a run needs
// samples of this).
type Usage struct {
	CPU     float64
	PeakRSS int64
	RSS     int64
}

// ReadUsage reads pid's usage from /proc.
func ReadUsage(pid int) (Usage, error) {
	var u Usage
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// Fields after the parenthesised command name start at field 3 (state);
	// utime, stime, cutime, cstime are fields 14..17.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 15 {
		return u, fmt.Errorf("bench: /proc/%d/stat: unexpected format", pid)
	}
	var ticks int64
	for _, s := range f[11:15] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return u, fmt.Errorf("bench: /proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	u.CPU = float64(ticks) / userHZ
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for l := range strings.Lines(string(st)) {
		for field, dst := range map[string]*int64{"VmHWM:": &u.PeakRSS, "VmRSS:": &u.RSS} {
			if v, ok := strings.CutPrefix(l, field); ok {
				kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				if err != nil {
					return u, fmt.Errorf("bench: /proc/%d/status %s %w", pid, field, err)
				}
				*dst = kb << 10
			}
		}
	}
	return u, nil
}
