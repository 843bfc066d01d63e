package store

import (
	"fmt"

	"gorm.io/gorm"

	"partnerd/apperr"
)

// Page is one keyset page of a list, whether more follow, and the size of
// the whole list.
type Page[T any] struct {
	Items []T
	More  bool
	Total int
}

// PageOf reads up to first (0..max) rows b.* of from (the row aliased b)
// matching where, ordered by order, after the row afterID — found through
// the same filter, so a cursor the caller may not see gives an empty page,
// as an unknown one does — and counts the whole list. key lists the columns
// order sorts ascending by ("-b.month, b.id").
func PageOf[T any](db *gorm.DB, from, where string, args []any, key, order string, first, max int, afterID int64) (*Page[T], error) {
	if first < 0 || first > max {
		return nil, apperr.Invalid("first", "first must be between 0 and %d", max)
	}
	q, qa := where, args
	if afterID > 0 {
		q += ` AND (` + key + `) > (SELECT ` + key + ` FROM ` + from + ` WHERE b.id = ? AND ` + where + `)`
		qa = append(append(append([]any{}, args...), afterID), args...)
	}
	out := &Page[T]{}
	if err := db.Raw(`SELECT b.* FROM `+from+` WHERE `+q+` ORDER BY `+order+` LIMIT ?`, append(qa, first+1)...).Scan(&out.Items).Error; err != nil {
		return nil, fmt.Errorf("list %s: %w", from, err)
	}
	if out.More = len(out.Items) > first; out.More {
		out.Items = out.Items[:first]
	}
	if err := db.Raw(`SELECT count(*) FROM `+from+` WHERE `+where, args...).Scan(&out.Total).Error; err != nil {
		return nil, fmt.Errorf("count %s: %w", from, err)
	}
	return out, nil
}
