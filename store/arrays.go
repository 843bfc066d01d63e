package store

import (
	"database/sql/driver"
	"fmt"
	"strconv"
	"strings"
)

// Strings is a []string stored as a PostgreSQL text[]: it writes the array
// literal (TextArray) and reads one back, quoted elements included. A NULL
// element reads as "".
type Strings []string

// Value implements driver.Valuer.
func (s Strings) Value() (driver.Value, error) { return TextArray(s), nil }

// Scan implements sql.Scanner.
func (s *Strings) Scan(src any) error {
	lit, err := arrayLiteral(src)
	if err != nil || lit == "" {
		*s = nil
		return err
	}
	out, err := parseArray(lit)
	*s = out
	return err
}

// Int64s is a []int64 stored as a PostgreSQL bigint[].
type Int64s []int64

// Value implements driver.Valuer.
func (s Int64s) Value() (driver.Value, error) { return Int64Array(s), nil }

// Scan implements sql.Scanner.
func (s *Int64s) Scan(src any) error {
	lit, err := arrayLiteral(src)
	if err != nil || lit == "" {
		*s = nil
		return err
	}
	parts, err := parseArray(lit)
	if err != nil {
		return err
	}
	out := make(Int64s, len(parts))
	for i, p := range parts {
		if out[i], err = strconv.ParseInt(p, 10, 64); err != nil {
			return fmt.Errorf("scan bigint[]: %w", err)
		}
	}
	*s = out
	return nil
}

func arrayLiteral(src any) (string, error) {
	switch v := src.(type) {
	case nil:
		return "", nil
	case []byte:
		return string(v), nil
	case string:
		return v, nil
	default:
		return "", fmt.Errorf("scan array: cannot scan %T", src)
	}
}

// parseArray parses a one-dimensional PostgreSQL array literal.
func parseArray(lit string) ([]string, error) {
	if len(lit) < 2 || lit[0] != '{' || lit[len(lit)-1] != '}' {
		return nil, fmt.Errorf("scan array: not an array literal: %q", lit)
	}
	body := lit[1 : len(lit)-1]
	out := []string{}
	if body == "" {
		return out, nil
	}
	var b strings.Builder
	for i := 0; i <= len(body); {
		if i == len(body) {
			break
		}
		b.Reset()
		if body[i] == '"' {
			i++
			for i < len(body) && body[i] != '"' {
				if body[i] == '\\' && i+1 < len(body) {
					i++
				}
				b.WriteByte(body[i])
				i++
			}
			if i >= len(body) {
				return nil, fmt.Errorf("scan array: unterminated element in %q", lit)
			}
			i++ // closing quote
			out = append(out, b.String())
		} else {
			j := strings.IndexByte(body[i:], ',')
			if j < 0 {
				j = len(body) - i
			}
			e := body[i : i+j]
			if e == "NULL" {
				e = ""
			}
			out = append(out, e)
			i += j
		}
		if i < len(body) {
			if body[i] != ',' {
				return nil, fmt.Errorf("scan array: unexpected %q in %q", body[i], lit)
			}
			i++
		}
	}
	return out, nil
}
