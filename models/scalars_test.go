package models_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
	_ "time/tzdata" // Asia/Shanghai even where the system has no zone database

	"github.com/shopspring/decimal"

	"partnerd/apperr"
	"partnerd/models"
)

func TestParseDecimal_AcceptsPlainAmounts(t *testing.T) {
	for _, s := range []string{"0", "-1.5", "12345678901234.123456", "1234.50", "-0.000001", "99999999999999.999999"} {
		d, err := models.ParseDecimal(s)
		if err != nil {
			t.Errorf("ParseDecimal(%q): %v", s, err)
			continue
		}
		if want := decimal.RequireFromString(s); !d.Equal(want) {
			t.Errorf("ParseDecimal(%q) = %s, want %s", s, d, want)
		}
	}
}

func TestParseDecimal_RefusesWhatNUMERICCannotHoldOrIsAmbiguous(t *testing.T) {
	for _, s := range []string{
		"1e5", "NaN", "Inf", "-Inf", "Infinity",
		"1.1234567",       // 7 fractional digits
		"123456789012345", // 15 integer digits
		"", " 1", "1 ", "+1", "1.", ".5", "0x10", "-", "1,5", "１", "--1", "1.2.3",
	} {
		if d, err := models.ParseDecimal(s); err == nil {
			t.Errorf("ParseDecimal(%q) = %s, want an error", s, d)
		} else if apperr.CodeOf(err) != apperr.Validation {
			t.Errorf("ParseDecimal(%q): code %s, want VALIDATION", s, apperr.CodeOf(err))
		}
	}
}

func TestFormatDecimal_TwoDigitsAtLeastNoTrailingZerosBeyond(t *testing.T) {
	for in, want := range map[string]string{
		"1234.5":   "1234.50",
		"0.125":    "0.125",
		"0":        "0.00",
		"-3":       "-3.00",
		"0.100":    "0.10",
		"100.000":  "100.00",
		"0.000":    "0.00",
		"1.123456": "1.123456",
		"-0.5":     "-0.50",
	} {
		if got := models.FormatDecimal(decimal.RequireFromString(in)); got != want {
			t.Errorf("FormatDecimal(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestMarshalDecimal_WritesAString(t *testing.T) {
	var b bytes.Buffer
	models.MarshalDecimal(decimal.RequireFromString("12.5")).MarshalGQL(&b)
	if b.String() != `"12.50"` {
		t.Fatalf("MarshalDecimal = %s, want \"12.50\"", b.String())
	}
}

func TestUnmarshalDecimal_RefusesNumbers(t *testing.T) {
	for _, v := range []any{json.Number("12.5"), 12.5, float64(3), 7, int64(7), nil, true} {
		if d, err := models.UnmarshalDecimal(v); err == nil {
			t.Errorf("UnmarshalDecimal(%#v) = %s, want an error", v, d)
		} else if apperr.CodeOf(err) != apperr.Validation {
			t.Errorf("UnmarshalDecimal(%#v): code %s, want VALIDATION", v, apperr.CodeOf(err))
		}
	}
	d, err := models.UnmarshalDecimal("12.50")
	if err != nil || !d.Equal(decimal.RequireFromString("12.5")) {
		t.Fatalf("UnmarshalDecimal(\"12.50\") = %s, %v", d, err)
	}
	if _, err := models.UnmarshalDecimal("1e5"); apperr.CodeOf(err) != apperr.Validation {
		t.Fatalf("UnmarshalDecimal(\"1e5\"): %v, want VALIDATION", err)
	}
}

func TestParseMonth(t *testing.T) {
	m, err := models.ParseMonth("2026-01")
	if err != nil || m != (models.Month{Year: 2026, Month: time.January}) || m.String() != "2026-01" {
		t.Fatalf("ParseMonth(2026-01) = %+v, %v", m, err)
	}
	for _, s := range []string{"2026-1", "2026-13", "2026-00", "26-01", "2026/01", "", "2026-01-01", "2026-+1", "2026- 1", "abcd-01", "2026--1"} {
		if m, err := models.ParseMonth(s); err == nil {
			t.Errorf("ParseMonth(%q) = %v, want an error", s, m)
		} else if apperr.CodeOf(err) != apperr.Validation {
			t.Errorf("ParseMonth(%q): code %s, want VALIDATION", s, apperr.CodeOf(err))
		}
	}
	if _, err := models.UnmarshalMonth(202601); apperr.CodeOf(err) != apperr.Validation {
		t.Errorf("UnmarshalMonth(202601): %v, want VALIDATION", err)
	}
}

func shanghai(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func utc(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMonth_BoundsAreInBeijingTime(t *testing.T) {
	loc := shanghai(t)
	feb := models.Month{Year: 2026, Month: time.February}
	if got, want := feb.Start(loc), utc(t, "2026-01-31T16:00:00Z"); !got.Equal(want) {
		t.Errorf("Start = %s, want %s", got.UTC(), want)
	}
	if got, want := feb.End(loc), utc(t, "2026-02-28T16:00:00Z"); !got.Equal(want) {
		t.Errorf("End = %s, want %s", got.UTC(), want)
	}
	dec := models.Month{Year: 2025, Month: time.December}
	if got, want := dec.End(loc), utc(t, "2025-12-31T16:00:00Z"); !got.Equal(want) {
		t.Errorf("December End = %s, want %s", got.UTC(), want)
	}
	if dec.Next() != (models.Month{Year: 2026, Month: time.January}) || (models.Month{Year: 2026, Month: time.January}).Prev() != dec {
		t.Errorf("Next/Prev across the year are wrong")
	}
}

func TestMonthOf_TheLastSecondOfJanuaryInBeijing(t *testing.T) {
	loc := shanghai(t)
	if got := models.MonthOf(utc(t, "2026-01-31T15:59:59Z"), loc); got.String() != "2026-01" {
		t.Errorf("MonthOf(2026-01-31T15:59:59Z) = %s, want 2026-01", got)
	}
	if got := models.MonthOf(utc(t, "2026-01-31T16:00:00Z"), loc); got.String() != "2026-02" {
		t.Errorf("MonthOf(2026-01-31T16:00:00Z) = %s, want 2026-02", got)
	}
}

func TestUnmarshalTime_ReturnsUTC(t *testing.T) {
	got, err := models.UnmarshalTime("2026-02-01T00:00:00+08:00")
	if err != nil {
		t.Fatal(err)
	}
	if got.Location() != time.UTC || !got.Equal(utc(t, "2026-01-31T16:00:00Z")) {
		t.Fatalf("UnmarshalTime = %s (%s), want 2026-01-31T16:00:00Z in UTC", got, got.Location())
	}
	for _, v := range []any{"yesterday", "2026-01-31", "", 1700000000} {
		if _, err := models.UnmarshalTime(v); apperr.CodeOf(err) != apperr.Validation {
			t.Errorf("UnmarshalTime(%#v): %v, want VALIDATION", v, err)
		}
	}
	var b bytes.Buffer
	models.MarshalTime(got.In(shanghai(t))).MarshalGQL(&b)
	if b.String() != `"2026-01-31T16:00:00Z"` {
		t.Errorf("MarshalTime = %s, want UTC", b.String())
	}
}

func FuzzParseDecimal(f *testing.F) {
	for _, s := range []string{"0", "-1.5", "12345678901234.123456", "1e5", "NaN", ".5", "1.", "+1", "0x10", "100.000", "-0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := models.ParseDecimal(s)
		if err != nil {
			if apperr.CodeOf(err) != apperr.Validation {
				t.Fatalf("ParseDecimal(%q): code %s, want VALIDATION", s, apperr.CodeOf(err))
			}
			return
		}
		out := models.FormatDecimal(d)
		back, err := models.ParseDecimal(out)
		if err != nil {
			t.Fatalf("ParseDecimal(%q) ok, but its format %q is refused: %v", s, out, err)
		}
		if !back.Equal(d) {
			t.Fatalf("round trip %q -> %q -> %s, want %s", s, out, back, d)
		}
	})
}

// FuzzParseMonth: a month is refused with VALIDATION or read as a month of
// 2000-2999 that is written exactly as the input (one spelling per month),
// and the GraphQL scalar reads a string as ParseMonth does and refuses any
// other value with VALIDATION.
func FuzzParseMonth(f *testing.F) {
	for _, s := range []string{"2026-01", "2026-12", "1999-12", "3000-01", "2026-00", "2026-13", "2026-1", "2026-001",
		"+026-01", "2026-+1", "2026--1", "-026-01", "2026- 1", " 2026-01", "2026-01 ", "2026/01", "２０２６-01", "2026-0\x001", ""} {
		f.Add(s, uint8(0), int64(0))
	}
	f.Add("", uint8(1), int64(202601))
	f.Add("", uint8(2), int64(2026))
	f.Add("2026-01", uint8(3), int64(0))
	f.Fuzz(func(t *testing.T, s string, kind uint8, n int64) {
		m, err := models.ParseMonth(s)
		if err != nil {
			if apperr.CodeOf(err) != apperr.Validation {
				t.Fatalf("ParseMonth(%q): code %s, want VALIDATION", s, apperr.CodeOf(err))
			}
		} else {
			if m.Year < 2000 || m.Year > 2999 || m.Month < time.January || m.Month > time.December {
				t.Fatalf("ParseMonth(%q) = %+v, outside 2000-01..2999-12", s, m)
			}
			if m.String() != s {
				t.Fatalf("ParseMonth(%q) = %+v, which is written %q", s, m, m.String())
			}
			back, err := models.ParseMonth(m.String())
			if err != nil || back != m {
				t.Fatalf("round trip %q -> %q -> %+v, %v", s, m.String(), back, err)
			}
			var b bytes.Buffer
			models.MarshalMonth(m).MarshalGQL(&b)
			var written string
			if err := json.Unmarshal(b.Bytes(), &written); err != nil || written != s {
				t.Fatalf("MarshalMonth(%+v) = %s, want %q", m, b.String(), s)
			}
		}

		// The GraphQL scalar: a string is read as ParseMonth reads it.
		um, uerr := models.UnmarshalMonth(s)
		if um != m || apperr.CodeOf(uerr) != apperr.CodeOf(err) {
			t.Fatalf("UnmarshalMonth(%q) = %+v, %v; ParseMonth = %+v, %v", s, um, uerr, m, err)
		}
		// Any other value is refused, whatever it holds.
		var v any
		switch kind % 7 {
		case 0:
			return
		case 1:
			v = n
		case 2:
			v = int(n)
		case 3:
			v = float64(n)
		case 4:
			v = json.Number(s)
		case 5:
			v = []byte(s)
		case 6:
			v = nil
		}
		if got, err := models.UnmarshalMonth(v); apperr.CodeOf(err) != apperr.Validation {
			t.Fatalf("UnmarshalMonth(%#v) = %+v, %v, want VALIDATION", v, got, err)
		}
	})
}
