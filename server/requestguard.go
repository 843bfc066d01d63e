package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"unicode/utf8"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"partnerd/apperr"
)

// guardRequests refuses, with the contract's error shape, the GraphQL
// requests gqlgen's transports would take badly or answer without a code:
//   - a JSON body that is not UTF-8 (encoding/json would replace the bad
//     bytes and the API store the result), or not one JSON object (batches
//     of operations are not supported): 400 VALIDATION (a body that is not
//     JSON gqlgen refuses, and the error presenter keeps it from quoting
//     the body back);
//   - a GET whose URL query is not UTF-8 (400), or that would run a
//     mutation or subscription: 405 VALIDATION, no state change through GET;
//   - a POST that is neither JSON nor multipart: 415 VALIDATION;
//   - a method other than GET, POST, OPTIONS or HEAD: 405 VALIDATION;
//   - a multipart request without a Content-Length: 411 VALIDATION; one
//     gqlgen refuses gets VALIDATION on its errors.
//
// WebSocket upgrades pass untouched.
func guardRequests(l Limits, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" {
			next.ServeHTTP(w, r)
			return
		}
		switch r.Method {
		case http.MethodGet:
			if !guardGet(w, r, l) {
				return
			}
		case http.MethodPost:
			mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
			switch mt {
			case "application/json":
				if !guardJSON(w, r) {
					return
				}
			case "multipart/form-data":
				guardMultipart(w, r, next)
				return
			default:
				writeError(w, http.StatusUnsupportedMediaType, apperr.Validation,
					"send GraphQL requests as application/json (multipart/form-data for uploads)")
				return
			}
		case http.MethodOptions, http.MethodHead:
		default:
			w.Header().Set("Allow", "GET, POST, OPTIONS")
			writeError(w, http.StatusMethodNotAllowed, apperr.Validation, "send GraphQL requests with POST (or queries with GET)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// guardJSON reads a JSON request body (limitBody has capped it) and puts it
// back for gqlgen; false when it refused the request.
func guardJSON(w http.ResponseWriter, r *http.Request) bool {
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(r.Body)
	body := buf.Bytes()
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, apperr.Validation, "the request body is larger than "+byteSize(tooLarge.Limit))
		return false
	case err != nil:
		writeError(w, http.StatusBadRequest, apperr.Validation, "the request body could not be read")
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	switch {
	case !utf8.Valid(body):
		writeError(w, http.StatusBadRequest, apperr.Validation, "the request body is not valid UTF-8")
		return false
	case len(trimmed) > 0 && trimmed[0] == '[':
		writeError(w, http.StatusBadRequest, apperr.Validation, "batched requests (a JSON array) are not supported: send one operation per request")
		return false
	case len(trimmed) == 0 || trimmed[0] != '{':
		writeError(w, http.StatusBadRequest, apperr.Validation, `the request body must be one JSON object: {"query", "variables", "operationName"}`)
		return false
	}
	return true
}

// guardGet refuses a GET whose URL query is broken or not UTF-8, or whose
// operation is not a query; false when it refused the request.
func guardGet(w http.ResponseWriter, r *http.Request, l Limits) bool {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, apperr.Validation, "the URL query could not be parsed")
		return false
	}
	for _, vs := range q {
		for _, v := range vs {
			if !utf8.ValidString(v) {
				writeError(w, http.StatusBadRequest, apperr.Validation, "the URL query is not valid UTF-8")
				return false
			}
		}
	}
	query := q.Get("query")
	if query == "" {
		return true
	}
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: query}, l.ParserTokens)
	if err != nil {
		return true // gqlgen parses it again and reports the error
	}
	if op := doc.Operations.ForName(q.Get("operationName")); op != nil && op.Operation != ast.Query {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, apperr.Validation, "a "+string(op.Operation)+" must be sent with POST: GET runs queries only")
		return false
	}
	return true
}

// guardMultipart serves a multipart request of a declared length (411
// without one: limitBody can only refuse a body over UploadBytes before
// reading it when its length is known, and gqlgen would hold a chunked
// upload in memory); when gqlgen refuses the request, every error of its
// answer without a code gets VALIDATION.
func guardMultipart(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if r.ContentLength < 0 {
		writeError(w, http.StatusLengthRequired, apperr.Validation, "an upload must declare its length (Content-Length)")
		return
	}
	rw := &refusalWriter{ResponseWriter: w}
	next.ServeHTTP(rw, r)
	if !rw.refused {
		return
	}
	var resp map[string]any
	if err := json.Unmarshal(rw.buf.Bytes(), &resp); err != nil {
		writeError(w, rw.status, apperr.Validation, "the multipart request could not be read")
		return
	}
	list, _ := resp["errors"].([]any)
	for _, e := range list {
		if e, ok := e.(map[string]any); ok {
			ext, _ := e["extensions"].(map[string]any)
			if ext == nil {
				ext = map[string]any{}
				e["extensions"] = ext
			}
			if _, ok := ext["code"]; !ok {
				ext["code"] = string(apperr.Validation)
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rw.status)
	_ = json.NewEncoder(w).Encode(resp)
}

// refusalWriter passes a response through unless its status is an error;
// then it keeps the body (a short error list) for guardMultipart to rewrite.
type refusalWriter struct {
	http.ResponseWriter
	refused bool
	status  int
	buf     bytes.Buffer
}

func (w *refusalWriter) WriteHeader(status int) {
	if status >= 400 {
		w.refused, w.status = true, status
		return
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *refusalWriter) Write(b []byte) (int, error) {
	if w.refused {
		return w.buf.Write(b)
	}
	return w.ResponseWriter.Write(b)
}
