// Package ids encodes and decodes the opaque global IDs of the GraphQL API:
// a type name and a database key, so node(id) can resolve any Node and
// clients never build IDs by hand.
package ids

import (
	"encoding/base64"
	"strconv"
	"strings"

	"partnerd/apperr"
)

// Encode returns the global ID of the object of the given type and key.
func Encode(typ string, key int64) string {
	return string(AppendEncode(nil, typ, key))
}

// AppendEncode appends the global ID of Encode to dst (without allocating
// when dst has room: large answers write thousands of IDs).
func AppendEncode(dst []byte, typ string, key int64) []byte {
	var raw [64]byte
	r := append(append(raw[:0], typ...), ':')
	r = strconv.AppendInt(r, key, 10)
	return base64.RawURLEncoding.AppendEncode(dst, r)
}

// Parse splits a global ID into its type and key. A malformed ID is a
// VALIDATION error.
func Parse(id string) (typ string, key int64, err error) {
	raw, derr := base64.RawURLEncoding.DecodeString(id)
	if derr != nil || len(id) > 128 {
		return "", 0, apperr.Invalid("id", "%q is not a valid ID", apperr.Clip(id))
	}
	t, k, ok := strings.Cut(string(raw), ":")
	if !ok || t == "" {
		return "", 0, apperr.Invalid("id", "%q is not a valid ID", apperr.Clip(id))
	}
	for _, r := range t {
		if r < 'A' || r > 'z' || (r > 'Z' && r < 'a') {
			return "", 0, apperr.Invalid("id", "%q is not a valid ID", apperr.Clip(id))
		}
	}
	n, perr := strconv.ParseInt(k, 10, 64)
	if perr != nil || n <= 0 || strconv.FormatInt(n, 10) != k {
		return "", 0, apperr.Invalid("id", "%q is not a valid ID", apperr.Clip(id))
	}
	return t, n, nil
}

// Decode returns the key of a global ID that must be of type typ. A malformed
// ID is VALIDATION; a well-formed ID of another type is NOT_FOUND (no object of
// the wanted type has that ID).
func Decode(id, typ string) (int64, error) {
	t, k, err := Parse(id)
	if err != nil {
		return 0, err
	}
	if t != typ {
		return 0, apperr.NotFoundf("no %s with ID %q", strings.ToLower(typ), id)
	}
	return k, nil
}

// DecodeAll decodes a list of IDs of one type, failing on the first bad one.
func DecodeAll(list []string, typ string) ([]int64, error) {
	out := make([]int64, 0, len(list))
	for _, s := range list {
		k, err := Decode(s, typ)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}
