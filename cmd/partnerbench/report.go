package main

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// section is the table of one scenario.
type section struct {
	name   string
	title  string
	notes  []string
	header []string
	rows   [][]string
	// charts are drawn as PNGs next to the results file and shown below
	// the table.
	charts []chart
	// figures is the Markdown that shows the drawn charts.
	figures string
}

func (s *section) markdown() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n## %s\n\n", s.title)
	for _, n := range s.notes {
		fmt.Fprintf(&sb, "- %s\n", n)
	}
	if len(s.notes) > 0 {
		sb.WriteString("\n")
	}
	sb.WriteString("| " + strings.Join(s.header, " | ") + " |\n")
	sb.WriteString("|" + strings.Repeat(" --- |", len(s.header)) + "\n")
	for _, r := range s.rows {
		sb.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	sb.WriteString(s.figures)
	return sb.String()
}

// report is the whole results file.
type report struct {
	o        *options
	m        machineInfo
	at       time.Time
	sections []*section
	failures []string
	took     time.Duration
}

func newReport(o *options, m machineInfo) *report {
	return &report{o: o, m: m, at: time.Now().UTC()}
}

func (r *report) add(s *section) { r.sections = append(r.sections, s) }

func (r *report) fail(name string, err error) {
	r.failures = append(r.failures, fmt.Sprintf("%s: %v", name, err))
}

// commandLine is the command that produced the results, quoted for a shell.
func (r *report) commandLine() string {
	parts := []string{"go", "run", "./cmd/partnerbench"}
	for _, a := range r.o.args {
		parts = append(parts, shellQuote(a))
	}
	return strings.Join(parts, " ")
}

func (r *report) header() string {
	var sb strings.Builder
	sb.WriteString("# partnerbench results\n\n")
	fmt.Fprintf(&sb, "Command: `%s`\n\n", r.commandLine())
	fmt.Fprintf(&sb, "- Taken: %s\n", r.at.Format(time.RFC3339))
	fmt.Fprintf(&sb, "- Machine: %d CPUs (%s), %s memory, %s\n", r.m.CPUs, r.m.CPUModel, r.m.Memory, r.m.OS)
	fmt.Fprintf(&sb, "- PostgreSQL %s, Redis %s, %s\n", r.m.PostgreSQL, r.m.Redis, r.m.Go)
	mode := "full"
	if r.o.quick {
		mode = "quick"
	}
	fmt.Fprintf(&sb, "- Settings: %s; seed %d; %d run(s) per figure (median, min, max); load scenarios: %d closed-loop clients over keep-alive HTTP, %s per run after a %s warm-up\n",
		mode, r.o.seed, r.o.runs, r.o.concurrency, r.o.duration, r.o.warmup)
	sb.WriteString("- System under test: partnerd's HTTP server (server.New with the deps of cmd/partnerd/run.go, default limits) in the harness process on 127.0.0.1, authenticated as a platform admin, without the per-caller rate limit (one token makes all the requests), against a fresh database; the load generator runs in the same process and shares the CPUs.\n")
	return sb.String()
}

func (r *report) markdown() string {
	var sb strings.Builder
	sb.WriteString(r.header())
	for _, s := range r.sections {
		sb.WriteString(s.markdown())
	}
	if len(r.failures) > 0 {
		sb.WriteString("\n## Harness errors\n\n")
		for _, f := range r.failures {
			fmt.Fprintf(&sb, "- %s\n", f)
		}
	}
	if r.took > 0 {
		fmt.Fprintf(&sb, "\nThe whole run took %s.\n", r.took)
	}
	return sb.String()
}

// The labels of the resource rows of load tables. The server runs in the
// harness process, with the load generator: its CPU per request counts
// both (a peer's rows, whose server is another process, count the load
// generator alone), and its peak RSS is the process's since it started.
const (
	cpuRowLabel = "CPU per request, harness process: server + load generator (ms)"
	rssRowLabel = "peak RSS of the harness process so far (MiB)"
)

// loadSection is the table of a load scenario: throughput, latency and
// errors over the runs.
func loadSection(name, title, unit string, notes []string, runs []runResult) *section {
	return &section{name: name, title: title, notes: notes,
		header: []string{"figure", "median", "min", "max"},
		rows:   figureRows(loadFigures(unit, cpuRowLabel), [][]runResult{runs})}
}

// figure is one row of a load table: its label, how to read it from a run
// and how to write it.
type figure struct {
	name string
	f    func(runResult) float64
	fmt  func(float64) string
}

// loadFigures are the rows of a load table: rate (labelled unit),
// latencies, errors, requests and the harness's resources (the CPU row
// labelled cpuLabel).
func loadFigures(unit, cpuLabel string) []figure {
	return []figure{
		{unit, runResult.rate, num},
		{"p50 latency (ms)", func(r runResult) float64 { return r.p(50) }, ms},
		{"p99 latency (ms)", func(r runResult) float64 { return r.p(99) }, ms},
		{"errors per run", func(r runResult) float64 { return float64(r.Errors) }, num},
		{"requests per run", func(r runResult) float64 { return float64(r.Requests) }, num},
		{cpuLabel, runResult.cpuPerRequest, ms},
		{rssRowLabel, runResult.peakRSSMiB, num},
	}
}

// figureRows writes each figure's median, min and max over the runs of
// each column, the columns side by side.
func figureRows(figs []figure, cols [][]runResult) [][]string {
	var rows [][]string
	for _, fg := range figs {
		row := []string{fg.name}
		for _, runs := range cols {
			s := spreadBy(runs, fg.f)
			row = append(row, fg.fmt(s.Median), fg.fmt(s.Min), fg.fmt(s.Max))
		}
		rows = append(rows, row)
	}
	return rows
}

// num formats a figure with thousands separators, no decimals.
func num(f float64) string { return thousands(int(math.Round(f))) }

func ms(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) }

func pct(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) + "%" }

func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '-' || r == '_' || r == '.' || r == '/' || r == ':' || r == '=' || r == ',' || r == '@' ||
			(r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// The markers between which writeResults puts a run's results into a file
// that holds them (BENCHMARKS.md), keeping the text around them.
const (
	resultsBegin = "<!-- partnerbench: results begin (written by partnerbench; edit outside the markers) -->"
	resultsEnd   = "<!-- partnerbench: results end -->"
)

// writeResults writes a run's results to path: between the results markers
// when the file exists and holds them (its headings one level down, under
// the file's own), else as the whole file.
func writeResults(path, results string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	text := results
	if s := string(old); err == nil {
		i, j := strings.Index(s, resultsBegin), strings.Index(s, resultsEnd)
		if i >= 0 && j > i {
			var sb strings.Builder
			sb.WriteString(s[:i+len(resultsBegin)])
			sb.WriteString("\n\n")
			for line := range strings.Lines(results) {
				if strings.HasPrefix(line, "#") {
					sb.WriteString("#")
				}
				sb.WriteString(line)
			}
			sb.WriteString("\n")
			sb.WriteString(s[j:])
			text = sb.String()
		}
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
