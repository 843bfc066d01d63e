package main

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// chart is one figure of a section, drawn as a PNG next to the results
// file: grouped bars (a group per Groups label, a bar per series, each
// series with one value per group) or, with X set, lines (a point per X
// per series).
type chart struct {
	// File names the PNG (without directory).
	File   string
	Title  string
	YLabel string
	// Groups are the bar groups' labels; X the lines' x values (one of the
	// two is set).
	Groups []string
	X      []float64
	XLabel string
	// LogX draws the x axis of lines on a log scale.
	LogX   bool
	Series []chartSeries
}

// chartSeries is one bar colour or one line: its value per group or x.
type chartSeries struct {
	Name   string
	Values []float64
}

// The size of every PNG.
const (
	plotWidth  = 8 * vg.Inch
	plotHeight = 4.5 * vg.Inch
)

// palette are the series' colours, in order.
func palette() []color.Color {
	return []color.Color{
		color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, // partnerd
		color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, // the peer
		color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, // the floor
		color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	}
}

// draw renders c into dir/c.File.
func (c chart) draw(dir string) error {
	p := plot.New()
	p.Title.Text = c.Title
	p.Y.Label.Text = c.YLabel
	p.Legend.Top = true
	colors := palette()
	switch {
	case len(c.Groups) > 0:
		// The bars of a group share 60% of the group's width.
		w := vg.Length(float64(plotWidth) * 0.6 / float64(len(c.Groups)*max(len(c.Series), 1)))
		for i, s := range c.Series {
			if len(s.Values) != len(c.Groups) {
				return fmt.Errorf("chart %s: series %s has %d values for %d groups", c.File, s.Name, len(s.Values), len(c.Groups))
			}
			bars, err := plotter.NewBarChart(plotter.Values(s.Values), w)
			if err != nil {
				return fmt.Errorf("chart %s: %w", c.File, err)
			}
			bars.Color = colors[i%len(colors)]
			bars.LineStyle.Width = 0
			bars.Offset = w * vg.Length(float64(i)-float64(len(c.Series)-1)/2)
			p.Add(bars)
			p.Legend.Add(s.Name, bars)
		}
		p.NominalX(c.Groups...)
		p.X.Min, p.X.Max = -0.5, float64(len(c.Groups))-0.5
	case len(c.X) > 0:
		p.X.Label.Text = c.XLabel
		if c.LogX {
			p.X.Scale = plot.LogScale{}
		}
		ticks := make([]plot.Tick, len(c.X))
		for i, x := range c.X {
			ticks[i] = plot.Tick{Value: x, Label: short(x)}
		}
		p.X.Tick.Marker = plot.ConstantTicks(ticks)
		p.Add(plotter.NewGrid())
		for i, s := range c.Series {
			if len(s.Values) != len(c.X) {
				return fmt.Errorf("chart %s: series %s has %d values for %d x", c.File, s.Name, len(s.Values), len(c.X))
			}
			xys := make(plotter.XYs, len(c.X))
			for j := range c.X {
				xys[j].X, xys[j].Y = c.X[j], s.Values[j]
			}
			l, pts, err := plotter.NewLinePoints(xys)
			if err != nil {
				return fmt.Errorf("chart %s: %w", c.File, err)
			}
			l.Color, pts.Color = colors[i%len(colors)], colors[i%len(colors)]
			p.Add(l, pts)
			p.Legend.Add(s.Name, l, pts)
		}
	default:
		return fmt.Errorf("chart %s: neither groups nor x values", c.File)
	}
	// Room above the highest value for the legend.
	p.Y.Min, p.Y.Max = 0, p.Y.Max*1.25
	if err := p.Save(plotWidth, plotHeight, filepath.Join(dir, c.File)); err != nil {
		return fmt.Errorf("chart %s: %w", c.File, err)
	}
	return nil
}

// plotsDir is where the PNGs of the results file out go: a folder named
// after it ("bench-results.md" → "bench-results-plots").
func plotsDir(out string) string {
	return strings.TrimSuffix(out, filepath.Ext(out)) + "-plots"
}

// drawCharts draws every section's charts into dir and returns, per
// section, the Markdown that shows them (paths relative to resultsDir, the
// results file's folder).
func drawCharts(dir, resultsDir string, sections []*section) (map[*section]string, error) {
	rel, err := filepath.Rel(resultsDir, dir)
	if err != nil {
		rel = dir
	}
	out := map[*section]string{}
	made := false
	for _, s := range sections {
		var sb strings.Builder
		for _, c := range s.charts {
			if !made {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return nil, fmt.Errorf("plots folder: %w", err)
				}
				made = true
			}
			if err := c.draw(dir); err != nil {
				return nil, err
			}
			fmt.Fprintf(&sb, "\n![%s](%s)\n", c.Title, filepath.ToSlash(filepath.Join(rel, c.File)))
		}
		if sb.Len() > 0 {
			out[s] = sb.String()
		}
	}
	return out, nil
}

// short writes a count the way people say it: 10k, 1M, 250.
func short(x float64) string {
	switch {
	case x >= 1e6:
		return strconv.FormatFloat(x/1e6, 'f', -1, 64) + "M"
	case x >= 1e3:
		return strconv.FormatFloat(x/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(x, 'f', -1, 64)
}
