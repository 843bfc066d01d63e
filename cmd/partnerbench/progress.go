package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// progress shows how far a step is on stderr: a bar redrawn in place when
// stderr is a terminal, else a plain line every few seconds (CI logs).
type progress struct {
	w       io.Writer
	label   string
	total   int64
	unit    string
	extra   func() string
	tty     bool
	cur     atomic.Int64
	start   time.Time
	stop    chan struct{}
	stopped sync.WaitGroup
	once    sync.Once
}

// progress starts a progress display of a step of total units; extra, when
// not nil, adds a word on the current state.
func (b *bench) progress(label string, total int64, unit string, extra func() string) *progress {
	p := &progress{w: b.stderr, label: label, total: max(total, 1), unit: unit, extra: extra,
		tty: isTerminal(b.stderr), start: time.Now(), stop: make(chan struct{})}
	every := 5 * time.Second
	if p.tty {
		every = 200 * time.Millisecond
	}
	p.stopped.Add(1)
	go func() {
		defer p.stopped.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.draw(false)
			}
		}
	}()
	return p
}

func (p *progress) add(n int64) { p.cur.Add(n) }
func (p *progress) set(n int64) { p.cur.Store(n) }

// finish draws the final state and ends the display.
func (p *progress) finish() {
	p.once.Do(func() {
		close(p.stop)
		p.stopped.Wait()
		p.draw(true)
	})
}

func (p *progress) draw(final bool) {
	cur := min(p.cur.Load(), p.total)
	frac := float64(cur) / float64(p.total)
	el := time.Since(p.start).Round(100 * time.Millisecond)
	tail := ""
	if p.extra != nil {
		tail = ", " + p.extra()
	}
	if p.tty {
		const width = 30
		n := int(frac * width)
		bar := strings.Repeat("=", n) + strings.Repeat(" ", width-n)
		fmt.Fprintf(p.w, "\r\033[K%-28s [%s] %3.0f%% %s%s", p.label, bar, frac*100, el, tail)
		if final {
			fmt.Fprintln(p.w)
		}
		return
	}
	if !final && cur == 0 {
		return
	}
	unit := ""
	if p.unit != "ms" {
		unit = fmt.Sprintf(" (%d/%d %s)", cur, p.total, p.unit)
	}
	fmt.Fprintf(p.w, "partnerbench: %s: %.0f%%%s after %s%s\n", p.label, frac*100, unit, el, tail)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// tickTime moves p (counting milliseconds) with the time since start, up to
// dur, every 100 ms until the returned function is called; that function
// fills the bar.
func (p *progress) tickTime(start time.Time, dur time.Duration) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				p.set(int64(min(time.Since(start), dur) / time.Millisecond))
			}
		}
	}()
	return func() {
		close(done)
		p.set(int64(dur / time.Millisecond))
	}
}
