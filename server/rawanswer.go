package server

import (
	"bytes"
	"context"
	"encoding/json"
	"mime"
	"net/http"
)

// Compiled answers (resolvers.AnswerTree) are JSON already, written with
// gqlgen's escaping. gqlgen's POST transport would still pass them through
// encoding/json, which validates and compacts every byte of a
// json.RawMessage again: a quarter of the CPU of a 1,111-account tree. For
// POST requests with a JSON body (the transport that writes one response
// with one Write), the answer is handed to the response writer instead, and
// gqlgen writes a null in its place, which the writer swaps for it. Other
// transports (GET, multipart, WebSocket) carry the answer in the response
// as usual.

// rawSlot carries one compiled answer from the response hook to the writer.
type rawSlot struct {
	data json.RawMessage
}

type rawSlotKey struct{}

// takeRaw hands a compiled answer to the writer of the request in ctx, if
// it has one that is free; false when the response must carry it.
func takeRaw(ctx context.Context, data json.RawMessage) bool {
	slot, ok := ctx.Value(rawSlotKey{}).(*rawSlot)
	if !ok || slot.data != nil {
		return false
	}
	slot.data = data
	return true
}

// withRawAnswers lets compiled answers of POST requests bypass encoding/json
// (see above).
func withRawAnswers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Upgrade") != "" {
			h.ServeHTTP(w, r)
			return
		}
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			h.ServeHTTP(w, r)
			return
		}
		slot := &rawSlot{}
		h.ServeHTTP(&rawWriter{ResponseWriter: w, slot: slot}, r.WithContext(context.WithValue(r.Context(), rawSlotKey{}, slot)))
	})
}

// rawWriter writes the compiled answer in its slot in place of the data
// of the response body gqlgen writes.
type rawWriter struct {
	http.ResponseWriter
	slot *rawSlot
	done bool
}

var nullData = []byte(`{"data":null}`)

func (w *rawWriter) Write(b []byte) (int, error) {
	if w.slot.data == nil || w.done {
		return w.ResponseWriter.Write(b)
	}
	w.done = true
	body := make([]byte, 0, len(w.slot.data)+len(`{"data":}`))
	if bytes.Equal(b, nullData) {
		body = append(append(append(body, `{"data":`...), w.slot.data...), '}')
	} else {
		// Something added errors or extensions to the response: keep
		// them, with the answer as its data.
		var resp map[string]json.RawMessage
		if err := json.Unmarshal(b, &resp); err != nil {
			return w.ResponseWriter.Write(b)
		}
		resp["data"] = w.slot.data
		var err error
		if body, err = json.Marshal(resp); err != nil {
			return w.ResponseWriter.Write(b)
		}
	}
	if _, err := w.ResponseWriter.Write(body); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Unwrap gives http.ResponseController the writer underneath.
func (w *rawWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
