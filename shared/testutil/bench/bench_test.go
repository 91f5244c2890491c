package bench

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestQuantile(t *testing.T) {
	xs := []float64{5, 1, 3, 2, 4}
	if m := Median(xs); m != 3 {
		t.Errorf("median %v, want 3", m)
	}
	if q := Quantile([]float64{1, 2, 3, 4}, 0.5); q != 2.5 {
		t.Errorf("even median %v, want 2.5", q)
	}
	if q := Quantile(xs, 0.99); math.Abs(q-4.96) > 1e-9 {
		t.Errorf("p99 %v, want 4.96", q)
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("median of nothing is a number")
	}
	if xs[0] != 5 {
		t.Error("Quantile sorted its argument in place")
	}
}

func TestAlternateOrderAndErrors(t *testing.T) {
	var order []string
	ps, err := Alternate(3,
		func() (float64, error) { order = append(order, "A"); return 2, nil },
		func() (float64, error) { order = append(order, "B"); return 4, nil })
	if err != nil || len(ps) != 3 || strings.Join(order, "") != "ABABAB" {
		t.Fatalf("pairs %v order %v err %v", ps, order, err)
	}
	boom := errors.New("boom")
	n := 0
	ps, err = Alternate(3, func() (float64, error) {
		if n++; n == 2 {
			return 0, boom
		}
		return 1, nil
	}, nil)
	if !errors.Is(err, boom) || len(ps) != 1 || !strings.Contains(err.Error(), "round 2") {
		t.Fatalf("pairs %v err %v", ps, err)
	}
}

func TestFigureRatioIsMedianOfRoundRatios(t *testing.T) {
	f := Figure{Name: "x", BaselineName: "base", Goal: Goal{Value: 0.8},
		Rounds: []Pair{{Result: 8, Baseline: 10}, {Result: 9, Baseline: 10}, {Result: 3, Baseline: 2}}}
	f.Compute()
	if !f.Measured || f.Ratio != 0.9 || f.Low != 0.8 || f.High != 1.5 || f.Result != 8 || f.Baseline != 10 || !f.Met {
		t.Fatalf("%+v", f)
	}
	if r := MedianRatio(f.Rounds); r != f.Ratio {
		t.Errorf("MedianRatio %v, Figure.Ratio %v", r, f.Ratio)
	}
	a := Figure{Name: "p99", Goal: Goal{AtMost: true, Value: 50}, Rounds: []Pair{{Result: 40}, {Result: 70}, {Result: 60}}}
	a.Compute()
	if !a.Measured || a.Result != 60 || a.Met || a.Ratio != 0 {
		t.Fatalf("absolute: %+v", a)
	}
	for _, rs := range [][]Pair{nil, {{Result: 1, Baseline: 0}}, {{Result: math.NaN(), Baseline: 1}}} {
		g := Figure{Name: "bad", BaselineName: "b", Rounds: rs}
		g.Compute()
		if g.Measured || g.Met {
			t.Errorf("%v: measured %v met %v", rs, g.Measured, g.Met)
		}
	}
}

func TestReportCheckTableJSON(t *testing.T) {
	r := &Report{Mode: "quick", Rounds: 2, Machine: DescribeMachine()}
	r.Add(Figure{Name: "ok", Unit: "MiB/s", BaselineName: "direct", Goal: Goal{Value: 0.8},
		Rounds: []Pair{{Result: 50, Baseline: 100}, {Result: 60, Baseline: 100}}})
	r.Add(Figure{Name: "empty", Unit: "ms", Goal: Goal{AtMost: true, Value: 50}})
	r.Processes = append(r.Processes, Process{Section: "s", Function: "upload", CPU: 1.5, PeakRSS: 30 << 20})
	err := r.Check("ok", "empty", "absent")
	if err == nil || strings.Contains(err.Error(), "ok:") || !strings.Contains(err.Error(), "empty") || !strings.Contains(err.Error(), "absent: no figure") {
		t.Fatalf("check: %v", err)
	}
	if err := r.Check("ok"); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := r.Table(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"0.55× [0.50–0.60]", ">= 0.8×", "missed", "no number", "upload", "30.0", "mode quick"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if strings.HasPrefix(l, "|") && !strings.HasSuffix(strings.TrimSpace(l), "|") {
			t.Errorf("not a Markdown row: %q", l)
		}
	}
	path := filepath.Join(t.TempDir(), "bench", "results.json")
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	var back Report
	if err := json.Unmarshal(raw, &back); err != nil || len(back.Figures) != 2 || back.Figures[0].Ratio != 0.55 {
		t.Fatalf("round trip: %v %+v", err, back.Figures)
	}
}

func TestReadUsage(t *testing.T) {
	// Burn some CPU so the figure cannot be zero.
	x := 0.0
	for i := range 50_000_000 {
		x += math.Sqrt(float64(i))
	}
	u, err := ReadUsage(os.Getpid())
	if err != nil || u.CPU <= 0 || u.PeakRSS < 1<<20 || u.RSS < 1<<20 || u.RSS > u.PeakRSS || x == 0 {
		t.Fatalf("%+v %v", u, err)
	}
	if _, err := ReadUsage(-1); err == nil {
		t.Error("usage of no process")
	}
	if m := DescribeMachine(); m.CPUs < 1 || m.Go == "" {
		t.Errorf("%+v", m)
	}
}
