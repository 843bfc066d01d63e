package resolvers

import (
	"encoding/base64"
	"strconv"
	"strings"

	"partnerd/apperr"
	"partnerd/graph"
	"partnerd/ids"
	"partnerd/store"
)

// encodeCursor makes an opaque keyset cursor from a row id.
func encodeCursor(id int64) string {
	return string(appendCursor(nil, id))
}

// appendCursor appends the cursor of encodeCursor to dst.
func appendCursor(dst []byte, id int64) []byte {
	var raw [24]byte
	return base64.RawURLEncoding.AppendEncode(dst, strconv.AppendInt(append(raw[:0], 'c', ':'), id, 10))
}

// decodeCursor reads a cursor made by encodeCursor; nil or "" is the start.
func decodeCursor(after *string) (int64, error) {
	if after == nil || *after == "" {
		return 0, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(*after)
	if err == nil {
		if s, ok := strings.CutPrefix(string(raw), "c:"); ok {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
				return n, nil
			}
		}
	}
	return 0, apperr.Invalid("after", "the cursor is not valid: pass an endCursor or cursor from a previous page")
}

func pageSize(first *int, def int) int {
	if first == nil {
		return def
	}
	return *first
}

func strOr(p *string, def string) string {
	if p == nil {
		return def
	}
	return *p
}

// edges turns one keyset page into Relay edges and page info: each edge's
// cursor is its node's key, the end cursor the last one's.
func edges[N any, E any](list []N, more bool, key func(N) int64, edge func(cursor string, n N) E) ([]E, *graph.PageInfo) {
	out := make([]E, 0, len(list))
	info := &graph.PageInfo{HasNextPage: more}
	for _, n := range list {
		c := encodeCursor(key(n))
		out = append(out, edge(c, n))
		info.EndCursor = &c
	}
	return out, info
}

// ownedPage reads one page (first, after) of the list that belongs to the
// object of global ID owner (of type typ) with read, and makes its edges
// with edge; total counts the whole list.
func ownedPage[N any, E any](owner, typ string, first *int, after *string, read func(key int64, first int, afterID int64) (*store.Page[N], error),
	key func(N) int64, edge func(cursor string, n N) E) (es []E, info *graph.PageInfo, total int, err error) {
	k, err := ids.Decode(owner, typ)
	if err != nil {
		return nil, nil, 0, err
	}
	afterID, err := decodeCursor(after)
	if err != nil {
		return nil, nil, 0, err
	}
	page, err := read(k, pageSize(first, 50), afterID)
	if err != nil {
		return nil, nil, 0, err
	}
	es, info = edges(page.Items, page.More, key, edge)
	return es, info, page.Total, nil
}
