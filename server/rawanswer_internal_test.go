package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The POST writer swaps the null data gqlgen writes for the compiled
// answer; if anything added errors or extensions to the response, they are
// kept around the answer. Without an answer, bodies pass unchanged.
func TestRawWriter(t *testing.T) {
	answer := json.RawMessage(`{"account":{"name":"x \u003c y"}}`)
	cases := []struct {
		name, gqlgen, want string
		answer             bool
	}{
		{"swap", `{"data":null}`, `{"data":{"account":{"name":"x \u003c y"}}}`, true},
		{"extensions kept", `{"data":null,"extensions":{"k":1}}`, `{"data":{"account":{"name":"x \u003c y"}},"extensions":{"k":1}}`, true},
		{"no answer", `{"errors":[{"message":"m"}],"data":null}`, `{"errors":[{"message":"m"}],"data":null}`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := withRawAnswers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if c.answer && !takeRaw(r.Context(), answer) {
					t.Fatal("no slot for a POST of JSON")
				}
				if c.answer && takeRaw(r.Context(), answer) {
					t.Fatal("a second answer took the slot")
				}
				_, _ = w.Write([]byte(c.gqlgen))
			}))
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`{}`)).WithContext(context.Background())
			req.Header.Set("Content-Type", "application/json; charset=utf-8")
			h.ServeHTTP(rec, req)
			if rec.Body.String() != c.want {
				t.Fatalf("body %s, want %s", rec.Body.String(), c.want)
			}
		})
	}
	// Other transports carry the answer in the response: no slot.
	for _, r := range []*http.Request{
		httptest.NewRequest(http.MethodGet, "/graphql?query=x", nil),
		httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`x`)),
	} {
		if r.Method == http.MethodPost {
			r.Header.Set("Content-Type", "multipart/form-data; boundary=x")
		}
		withRawAnswers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if takeRaw(r.Context(), answer) {
				t.Fatalf("%s %s took a slot", r.Method, r.Header.Get("Content-Type"))
			}
		})).ServeHTTP(httptest.NewRecorder(), r)
	}
}
