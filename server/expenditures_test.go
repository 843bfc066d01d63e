package server_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"partnerd/accounts"
	"partnerd/ids"
	"partnerd/models"
	"partnerd/server"
	"partnerd/spend"
	"partnerd/testkit"
)

// expendituresAPI serves the handler behind a bearer-token middleware
// equivalent to the server's.
func expendituresAPI(t *testing.T) (*testkit.Tree, *httptest.Server) {
	t.Helper()
	tr := testkit.NewTree(t)
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := server.ExpendituresHandler(spend.New(tr.Store, loc).WithLogger(log), log)
	auth := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			p, err := tr.Accounts.Authenticate(r.Context(), tok)
			if err != nil {
				http.Error(w, "bad token", http.StatusUnauthorized)
				return
			}
			r = r.WithContext(accounts.WithPrincipal(r.Context(), p))
		}
		h.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(auth)
	t.Cleanup(srv.Close)
	return tr, srv
}

type expIngestBody struct {
	Accepted, Duplicates, Conflicts, Rejected int
	Errors                                    []struct {
		Index      int    `json:"index"`
		ExternalID string `json:"externalId"`
		Reason     string `json:"reason"`
	}
	AsOf *string `json:"asOf"`
}

type expErrorBody struct {
	Errors []struct {
		Message    string            `json:"message"`
		Extensions map[string]string `json:"extensions"`
	} `json:"errors"`
}

func expPost(t *testing.T, srv *httptest.Server, token, contentType string, body io.Reader, header ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/expenditures", body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func expLine(ext string, customer any, usage, list, actual string) string {
	b, _ := json.Marshal(map[string]any{"externalId": ext, "customerId": customer, "productCode": "ecs", "region": "cn-north-1",
		"billingMode": "PAY_PER_USE", "usageAt": usage, "listAmount": list, "actualAmount": actual})
	return string(b) + "\n"
}

func expWantError(t *testing.T, status int, body []byte, wantStatus int, code string, contains ...string) {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("status %d, want %d: %s", status, wantStatus, body)
	}
	var e expErrorBody
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) != 1 {
		t.Fatalf("error body %s is not one JSON error (%v)", body, err)
	}
	if e.Errors[0].Extensions["code"] != code {
		t.Errorf("code %q, want %q", e.Errors[0].Extensions["code"], code)
	}
	for _, s := range contains {
		if !strings.Contains(e.Errors[0].Message, s) {
			t.Errorf("message %q does not mention %q", e.Errors[0].Message, s)
		}
	}
}

func TestExpenditures_NDJSON(t *testing.T) {
	tr, srv := expendituresAPI(t)
	usage := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	body := expLine("h-1", ids.Encode("Account", tr.C1.Account.ID), usage, "10.50", "9") +
		expLine("h-2", tr.C2.Account.ID, usage, "1", "2") + // actual > list
		expLine("h-3", tr.C3.Account.ID, usage, "3", "3")
	status, b := expPost(t, srv, tr.Platform.Token, "application/x-ndjson; charset=utf-8", strings.NewReader(body))
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, b)
	}
	var got expIngestBody
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Accepted != 2 || got.Rejected != 1 || got.Duplicates != 0 || got.Conflicts != 0 || got.AsOf == nil {
		t.Fatalf("body %s", b)
	}
	if len(got.Errors) != 1 || got.Errors[0].Index != 1 || got.Errors[0].ExternalID != "h-2" || !strings.Contains(got.Errors[0].Reason, "list") {
		t.Errorf("errors %+v", got.Errors)
	}
	if _, err := time.Parse(time.RFC3339Nano, *got.AsOf); err != nil {
		t.Errorf("asOf %q: %v", *got.AsOf, err)
	}

	// A replay is all duplicates, and errors is an empty list, not null.
	status, b = expPost(t, srv, tr.Platform.Token, "application/jsonl", strings.NewReader(expLine("h-1", tr.C1.Account.ID, usage, "10.5", "9.000")))
	if status != http.StatusOK || !strings.Contains(string(b), `"duplicates":1`) || !strings.Contains(string(b), `"errors":[]`) {
		t.Errorf("replay: %d %s", status, b)
	}
}

func TestExpenditures_CSVAndGzip(t *testing.T) {
	tr, srv := expendituresAPI(t)
	usage := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	csv := spend.CSVHeader + "\r\n" +
		fmt.Sprintf("g-1,%d,ecs,cn-north-1,SUBSCRIPTION,%s,100,80\r\n", tr.C1.Account.ID, usage) +
		fmt.Sprintf("g-2,%s,ecs,,PAY_PER_USE,%s,1,1\r\n", ids.Encode("Account", tr.C4.Account.ID), usage)
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, _ = zw.Write([]byte(csv))
	_ = zw.Close()
	whole := zipped.Bytes()
	// A gzip stream cut short is the sender's to resend (400), not the
	// database's failure (it was once answered 503 "unavailable").
	status, b := expPost(t, srv, tr.Platform.Token, "text/csv", bytes.NewReader(whole[:len(whole)-12]), "Content-Encoding", "gzip")
	expWantError(t, status, b, http.StatusBadRequest, "VALIDATION", "could not be read")
	status, b = expPost(t, srv, tr.Platform.Token, "text/csv", bytes.NewReader(whole), "Content-Encoding", "gzip")
	if status != http.StatusOK || !strings.Contains(string(b), `"accepted":2`) {
		t.Fatalf("status %d: %s", status, b)
	}
}

func TestExpenditures_RefusedRequests(t *testing.T) {
	tr, srv := expendituresAPI(t)
	usage := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	good := expLine("r-1", tr.C1.Account.ID, usage, "1", "1")
	viewer := tr.AddUser(t, tr.Platform.Account, models.RoleViewer)

	status, b := expPost(t, srv, "", "application/x-ndjson", strings.NewReader(good))
	expWantError(t, status, b, http.StatusUnauthorized, "UNAUTHENTICATED")

	status, b = expPost(t, srv, tr.Platform.Token, "application/json", strings.NewReader(good))
	expWantError(t, status, b, http.StatusUnsupportedMediaType, "VALIDATION", "application/x-ndjson", "text/csv")

	status, b = expPost(t, srv, tr.D1.Token, "application/x-ndjson", strings.NewReader(good))
	expWantError(t, status, b, http.StatusForbidden, "FORBIDDEN")
	status, b = expPost(t, srv, viewer.Token, "application/x-ndjson", strings.NewReader(good))
	expWantError(t, status, b, http.StatusForbidden, "FORBIDDEN")

	truncated := good + good[:len(good)/2]
	status, b = expPost(t, srv, tr.Platform.Token, "application/x-ndjson", strings.NewReader(strings.Replace(truncated, "r-1", "r-2", 1)))
	expWantError(t, status, b, http.StatusBadRequest, "VALIDATION", "line 2")

	status, b = expPost(t, srv, tr.Platform.Token, "text/csv", strings.NewReader("id,customer,amount\n1,2,3\n"))
	expWantError(t, status, b, http.StatusBadRequest, "VALIDATION", "header")

	badRow := spend.CSVHeader + "\n" + fmt.Sprintf("c-1,%d,ecs,r,PAY_PER_USE,%s,1.2.3,1\n", tr.C1.Account.ID, usage)
	status, b = expPost(t, srv, tr.Platform.Token, "text/csv", strings.NewReader(badRow))
	expWantError(t, status, b, http.StatusBadRequest, "VALIDATION", "line 2", "list_amount")

	var n int64
	if err := tr.Store.DB.Raw(`SELECT count(*) FROM expenditures`).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d expenditures stored by refused requests", n)
	}

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/expenditures", nil)
	req.Header.Set("Authorization", "Bearer "+tr.Platform.Token)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
		t.Errorf("GET: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// TestExpenditures_MountedBehindTheServer posts through server.New: the real
// authentication, request id and a body well over the 1 MiB JSON cap.
func TestExpenditures_MountedBehindTheServer(t *testing.T) {
	a := testkit.NewAPI(t, server.Options{})
	usage := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	var body strings.Builder
	const n = 8000
	for i := 0; i < n; i++ {
		body.WriteString(expLine(fmt.Sprintf("m-%05d-%s", i, strings.Repeat("x", 100)), a.C1.Account.ID, usage, "1.25", "1"))
	}
	if body.Len() <= 1<<20 {
		t.Fatalf("body of %d bytes does not exceed the cap", body.Len())
	}
	req, _ := http.NewRequest(http.MethodPost, a.Server.URL+"/v1/expenditures", strings.NewReader(body.String()))
	req.Header.Set("Authorization", "Bearer "+a.Platform.Token)
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("X-Request-ID", "ingest-test-1")
	resp, err := a.Server.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), fmt.Sprintf(`"accepted":%d`, n)) {
		t.Fatalf("status %d: %.300s", resp.StatusCode, b)
	}
	var rid string
	if err := a.Store.DB.Raw(`SELECT request_id FROM audit_log WHERE action = 'expenditures.ingest'`).Scan(&rid).Error; err != nil || rid != "ingest-test-1" {
		t.Errorf("audit request id %q (%v), want the request's", rid, err)
	}

	req, _ = http.NewRequest(http.MethodPost, a.Server.URL+"/v1/expenditures", strings.NewReader(body.String()[:200]))
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err = a.Server.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without a token: %d, want 401", resp.StatusCode)
	}
}
