package spend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"partnerd/store"
)

// batch is a run of consecutive records of a request; first is the request
// index of recs[0].
type batch struct {
	recs  []Record
	first int64
	// The direct path's verdicts on recs and the indexes of those to copy.
	judged []judgement
	rows   []int
}

// feed reads a request's source in a goroutine of its own, in batches, so
// that parsing overlaps the database work of the batch before. It keeps what
// it read replayable: a SliceSource is replayed from its slice, any other
// source is written to a spool file as it is read.
//
// The consumer receives batches from next and hands each one back with
// recycle once done with it; at most feedBatches batches exist at a time,
// so the feed's memory does not grow with the request (the spool is on
// disk).
type feed struct {
	batches chan *batch
	free    chan *batch
	stopped atomic.Bool
	done    chan struct{}
	// err is the source's error (a malformed record, a failed read); it is
	// written before batches is closed and read after.
	err error
	// n counts the records read; read it after done.
	n int64

	slice    *sliceSource // replayable by itself, or
	spool    *spool       // the records read so far
	stopOnce sync.Once
}

// feedBatches is how many batches a feed fills and recycles: one being
// read, one waiting, one being judged and one being copied.
const feedBatches = 4

// startFeed starts reading src in batches of size records.
func (s *Service) startFeed(ctx context.Context, src Source, size int) (*feed, error) {
	f := &feed{batches: make(chan *batch, 1), free: make(chan *batch, feedBatches), done: make(chan struct{})}
	for range feedBatches {
		f.free <- &batch{recs: make([]Record, 0, size)}
	}
	if ss, ok := src.(*sliceSource); ok {
		f.slice = ss
	} else {
		sp, err := newSpool()
		if err != nil {
			return nil, err
		}
		f.spool = sp
	}
	go f.run(ctx, s, src, size)
	return f, nil
}

func (f *feed) run(ctx context.Context, s *Service, src Source, size int) {
	defer close(f.done)
	defer close(f.batches)
	_, checked := src.(checkedSource)
	b := <-f.free
	b.recs, b.first = b.recs[:0], 0
	send := func() bool {
		select {
		case f.batches <- b:
		case <-ctx.Done():
			f.err = ctx.Err()
			return false
		}
		if f.stopped.Load() {
			return false
		}
		select {
		case b = <-f.free:
		case <-ctx.Done():
			f.err = ctx.Err()
			return false
		}
		b.recs, b.first = b.recs[:0], f.n
		return true
	}
	for !f.stopped.Load() {
		rec, err := src.Next()
		if errors.Is(err, io.EOF) {
			if len(b.recs) > 0 {
				send()
			}
			break
		}
		if err == nil && !checked {
			if msg := checkRecord(&rec); msg != "" {
				err = recordError(f.n, "%s", msg)
			}
		}
		if err == nil && f.spool != nil {
			err = f.spool.write(&rec)
		}
		if err != nil {
			f.err = err
			return
		}
		b.recs = append(b.recs, rec)
		f.n++
		if f.n%progressEvery == 0 {
			s.log.InfoContext(ctx, "ingesting expenditures", "request_id", store.RequestID(ctx), "records", f.n)
		}
		if len(b.recs) == size && !send() {
			return
		}
	}
	if f.spool != nil && f.err == nil {
		f.err = f.spool.flush()
	}
}

// next returns the next batch, or nil after the last one; then err tells
// whether the source ended cleanly.
func (f *feed) next() *batch { return <-f.batches }

// recycle hands a batch back to the reader.
func (f *feed) recycle(b *batch) {
	select {
	case f.free <- b:
	default:
	}
}

// finish reads the rest of the source without using it (the spool keeps
// it), so that the request can be replayed whole, and returns the source's
// error.
func (f *feed) finish() error {
	for b := f.next(); b != nil; b = f.next() {
		f.recycle(b)
	}
	<-f.done
	return f.err
}

// replay returns a source of the records read, in order. Call it after
// finish.
func (f *feed) replay() (Source, error) {
	if f.slice != nil {
		return SliceSource(f.slice.recs), nil
	}
	return f.spool.reader()
}

// close stops the reader (after at most the record it is reading), waits
// for it and removes the spool.
func (f *feed) close() error {
	f.stopOnce.Do(func() {
		f.stopped.Store(true)
		for b := range f.batches {
			f.recycle(b)
		}
		<-f.done
	})
	if f.spool != nil {
		if err := f.spool.remove(); err != nil {
			return fmt.Errorf("remove the ingestion spool: %w", err)
		}
	}
	return nil
}
