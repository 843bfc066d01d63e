package store

import "strconv"

// Int64Array renders ids as a PostgreSQL array literal ("{1,2,3}") for
// "= ANY(?::bigint[])": gorm would expand a Go slice into a list instead.
func Int64Array(ids []int64) string {
	b := make([]byte, 0, len(ids)*8+2)
	b = append(b, '{')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return string(append(b, '}'))
}
