package spend

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/models"
)

// spool keeps the records of a streamed request in a temporary file, so the
// request can be replayed when its first attempt has to be rolled back (see
// Ingest): an HTTP body can be read only once. Each record is a few
// length-prefixed fields, about 100 bytes; the file is removed when the
// request ends.
type spool struct {
	f   *os.File
	w   *bufio.Writer
	buf []byte
}

func newSpool() (*spool, error) {
	f, err := os.CreateTemp("", "partnerd-ingest-*.spool")
	if err != nil {
		return nil, fmt.Errorf("ingestion spool: %w", err)
	}
	return &spool{f: f, w: bufio.NewWriterSize(f, 256<<10)}, nil
}

func (s *spool) write(r *Record) error {
	b := s.buf[:0]
	b = appendString(b, r.ExternalID)
	b = binary.AppendVarint(b, r.CustomerID)
	b = appendString(b, r.ProductCode)
	b = appendString(b, r.Region)
	b = appendString(b, string(r.BillingMode))
	b = binary.AppendVarint(b, r.UsageAt.Unix())
	b = binary.AppendUvarint(b, uint64(r.UsageAt.Nanosecond()))
	var err error
	if b, err = appendDecimal(b, r.List); err != nil {
		return err
	}
	if b, err = appendDecimal(b, r.Actual); err != nil {
		return err
	}
	s.buf = b
	if _, err := s.w.Write(b); err != nil {
		return fmt.Errorf("ingestion spool: %w", err)
	}
	return nil
}

func (s *spool) flush() error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("ingestion spool: %w", err)
	}
	return nil
}

// reader returns a source of the records written, from the first.
func (s *spool) reader() (Source, error) {
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("ingestion spool: %w", err)
	}
	return &spoolSource{r: bufio.NewReaderSize(s.f, 256<<10)}, nil
}

func (s *spool) remove() error {
	cerr := s.f.Close()
	if err := os.Remove(s.f.Name()); err != nil {
		return err
	}
	return cerr
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendDecimal writes d as its exponent and, when it fits an int64 (every
// amount but those with many trailing zeros), its coefficient; else as its
// MarshalBinary form.
func appendDecimal(b []byte, d decimal.Decimal) ([]byte, error) {
	if d.NumDigits() <= 18 {
		b = append(b, 0)
		b = binary.AppendVarint(b, int64(d.Exponent()))
		return binary.AppendVarint(b, d.CoefficientInt64()), nil
	}
	m, err := d.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("ingestion spool: %w", err)
	}
	b = append(b, 1)
	b = binary.AppendUvarint(b, uint64(len(m)))
	return append(b, m...), nil
}

// spoolSource reads back what a spool holds. Its records were checked when
// they were first read.
type spoolSource struct {
	r   *bufio.Reader
	buf []byte
}

func (*spoolSource) checksRecords() {}

func (s *spoolSource) Next() (Record, error) {
	var r Record
	ext, err := s.string()
	if errors.Is(err, io.EOF) {
		return r, io.EOF
	}
	if err != nil {
		return r, err
	}
	r.ExternalID = ext
	if r.CustomerID, err = binary.ReadVarint(s.r); err != nil {
		return r, s.fail(err)
	}
	if r.ProductCode, err = s.string(); err != nil {
		return r, s.fail(err)
	}
	if r.Region, err = s.string(); err != nil {
		return r, s.fail(err)
	}
	mode, err := s.string()
	if err != nil {
		return r, s.fail(err)
	}
	r.BillingMode = models.BillingMode(mode)
	sec, err := binary.ReadVarint(s.r)
	if err != nil {
		return r, s.fail(err)
	}
	nsec, err := binary.ReadUvarint(s.r)
	if err != nil {
		return r, s.fail(err)
	}
	r.UsageAt = time.Unix(sec, int64(nsec)).UTC()
	if r.List, err = s.decimal(); err != nil {
		return r, s.fail(err)
	}
	if r.Actual, err = s.decimal(); err != nil {
		return r, s.fail(err)
	}
	return r, nil
}

func (s *spoolSource) bytes() ([]byte, error) {
	n, err := binary.ReadUvarint(s.r)
	if err != nil {
		return nil, err
	}
	if uint64(cap(s.buf)) < n {
		s.buf = make([]byte, n)
	}
	s.buf = s.buf[:n]
	if _, err := io.ReadFull(s.r, s.buf); err != nil {
		return nil, err
	}
	return s.buf, nil
}

func (s *spoolSource) string() (string, error) {
	b, err := s.bytes()
	return string(b), err
}

func (s *spoolSource) decimal() (decimal.Decimal, error) {
	var d decimal.Decimal
	form, err := s.r.ReadByte()
	if err != nil {
		return d, err
	}
	if form == 0 {
		exp, err := binary.ReadVarint(s.r)
		if err != nil {
			return d, err
		}
		c, err := binary.ReadVarint(s.r)
		return decimal.New(c, int32(exp)), err
	}
	b, err := s.bytes()
	if err == nil {
		err = d.UnmarshalBinary(b)
	}
	return d, err
}

// fail reports a spool that ends inside a record.
func (s *spoolSource) fail(err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("ingestion spool: %w", err)
}
