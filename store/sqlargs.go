package store

import (
	"strconv"

	"gorm.io/gorm"
)

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

// Select runs a raw query on db and scans its rows into dest (a pointer to a
// struct or a slice of structs, matched by column name). It is gorm's
// Raw(...).Scan without the SQL text gorm renders for its trace recorder on
// every Scan, for the hot paths (deliveries, fan-out).
func Select(db *gorm.DB, dest any, sql string, args ...any) error {
	rows, err := db.Raw(sql, args...).Rows()
	if err != nil {
		return err
	}
	defer rows.Close()
	if rows.Next() {
		if err := db.ScanRows(rows, dest); err != nil {
			return err
		}
	}
	return rows.Err()
}

// TextArray renders strs as a PostgreSQL array literal of quoted elements
// ('{"a","b\"c"}') for "?::text[]" (and casts from it), as Int64Array does
// for ids.
func TextArray(strs []string) string {
	b := make([]byte, 0, len(strs)*12+2)
	b = append(b, '{')
	for i, s := range strs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		for j := 0; j < len(s); j++ {
			if s[j] == '"' || s[j] == '\\' {
				b = append(b, '\\')
			}
			b = append(b, s[j])
		}
		b = append(b, '"')
	}
	return string(append(b, '}'))
}
