package server_test

// Issue 11 point 6 (tenant isolation, adversarially) and the log scan of
// point 8.
//
// TestCanary_TenantIsolation builds two distributor trees on one product. In
// tree A every piece of text the partner or its customers own carries a
// canary ("canary-<random hex>"): account names, contact emails, users'
// names and emails (the canary is the local part), tags, expenditure
// records, resources, budgets' customers, migration and unbinding reasons,
// group and shared-unit names, webhook URLs and descriptions, invitation
// emails, voucher templates, bulk uploads, rating rules, freezes, bans and
// payout rejections — and every notification those cause renders A's names.
// Tree B mirrors it with its own marker. The workers run, so email reaches
// a real SMTP server (with SMTP AUTH), SMS a local webhook and webhooks the
// tenants' receivers.
//
// Then B's users (distributor admin and viewer, second-level reseller,
// customer, personal account) and A's own customers and reseller (who must
// not see their siblings) call every Query field of the schema with a deep selection, in
// their own scope and with A's (or the sibling's) IDs; subscribe to every
// Subscription field; download every export; call the REST endpoints; call
// every ID-taking mutation with A's IDs (the scope walker's machinery); and
// send malformed and colliding input. No byte of any answer, header, live
// event, email, SMS, webhook or inbox message they get may hold a marker they
// may not see, and a foreign ID must answer exactly as an unknown ID does.
// A's own admin sees the canary through every data-bearing field, so the
// test cannot pass vacuously, and a Query or Subscription field the table
// does not cover fails the test. One exception by design: the token of an
// active application link tells whoever holds it the partner's name
// (applicationLinkPreview), so other tenants are only thrown a revoked one.
//
// The LogScan subtest reads everything the API, the workers and the store
// logged during the run at debug level: no bearer token, link or invitation
// token, webhook secret or the SMTP password, and no chunk of a rendered
// email, SMS or webhook body may appear in it; the canary in a log line is
// only reported (logs are the operator's, not a tenant's).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ledongthuc/pdf"
	"github.com/vektah/gqlparser/v2/ast"

	"partnerd/accounts"
	"partnerd/bulk"
	"partnerd/credit"
	"partnerd/graph"
	"partnerd/ids"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/server"
	"partnerd/store"
	"partnerd/testkit"
)

// canarySMTPPassword is the SMTP AUTH password of the run's email sender:
// the log scan looks for it.
const canarySMTPPassword = "smtp-Pa55word-" + "7c1e5d0b9a"

// finalMark names the accounts renamed at the end of the activity, so a
// watcher knows it has read everything published before.
const finalMark = "finalmark"

// hookSink is a tenant's webhook receiver: it records every request and
// answers 200, or 503 while failures lasts (so failed deliveries are
// logged and retried).
type hookSink struct {
	srv      *httptest.Server
	mu       sync.Mutex
	bodies   [][]byte
	heads    []http.Header
	failures int
}

func newHookSink(t *testing.T) *hookSink {
	h := &hookSink{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies, h.heads = append(h.bodies, b), append(h.heads, r.Header.Clone())
		fail := h.failures > 0
		if fail {
			h.failures--
		}
		h.mu.Unlock()
		if fail {
			http.Error(w, "receiver busy", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// requests returns each request as its headers and body, in one blob each.
func (h *hookSink) requests() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([][]byte, len(h.bodies))
	for i, b := range h.bodies {
		var head bytes.Buffer
		_ = h.heads[i].Write(&head)
		out[i] = append(head.Bytes(), b...)
	}
	return out
}

func (h *hookSink) payloads() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([][]byte(nil), h.bodies...)
}

// tenant is one distributor tree. Every text it owns carries its prefix,
// followed by a code naming the account (or object) it belongs to: see
// marker.
type tenant struct {
	name, prefix, domain string
	phoneBase            int64
	phones               int64
	// The accounts, each as its ADMIN user: distributor, its two
	// second-level resellers, their customers (c1 and c1b under r1, c2
	// under r2) and the distributor's direct customers c3 and c3b.
	dist, r1, r2, c1, c1b, c2, c3, c3b testkit.Party
	// viewer is a VIEWER of the distributor.
	viewer testkit.Party
	// invitee is a PERSONAL account the distributor invites (it accepts
	// and becomes the distributor's customer); applicant one that applies
	// through a link and is rejected.
	invitee, applicant testkit.Party
	hook               *hookSink
	// objects: the global IDs of what the tenant owns, by GraphQL type.
	migration, unbinding, invitation, group, unit, link, application     string
	webhook, template, issuance, voucher, cancelledVoucher, bulkJob      string
	resource, expenditure, distBill, r1Bill, incentive, customerBill     string
	ratingRule, inboxMessage, delivery, extraToken, extraTokenID, userID string
	// revokedLinkToken is the token of a link the distributor revoked.
	revokedLinkToken, linkToken string
}

// marker is the text that names who in the tenant: prefix-who-.
func (tn *tenant) marker(who string) string { return tn.prefix + "-" + who + "-" }

// whoCodes are every code the tenant's markers use: its accounts and the
// objects whose visibility differs from their partner's.
var whoCodes = []string{"dist", "viewer", "r1", "r2", "c1", "c1b", "c2", "c3", "c3b", "invitee", "applicant",
	"grp", "unit", "vch", "vchb", "hook", "bulk", "link", "ban", "mig", "unb", "frz", "inc", "rule"}

// markersExcept are the tenant's markers of every code but allowed.
func (tn *tenant) markersExcept(allowed ...string) []string {
	var out []string
	for _, w := range whoCodes {
		ok := false
		for _, a := range allowed {
			ok = ok || a == w
		}
		if !ok {
			out = append(out, tn.marker(w))
		}
	}
	return out
}

func (tn *tenant) nextPhone() string {
	tn.phones++
	return fmt.Sprintf("+%d", tn.phoneBase+tn.phones)
}

func gid(p testkit.Party) string { return ids.Encode("Account", p.Account.ID) }

// scopeIDs are the IDs a row of the query table may name: the objects of
// one scope (a tenant's, seen from one partner and one customer), or
// unknown IDs of the same types.
type scopeIDs struct {
	Partner, Customer, Applicant, User                         string
	Migration, Unbinding, Invitation, Group, Unit              string
	Link, Application, Webhook, Template, Issuance, Voucher    string
	BulkJob, Resource, Expenditure, Bill, Incentive            string
	CustomerBill, RatingRule, InboxMessage, Delivery, ApiToken string
	// LinkToken is a link token for applicationLinkPreview.
	LinkToken string
}

// idRef is one ID of a view and its GraphQL type.
type idRef struct {
	typ string
	id  *string
}

// refs are the view's IDs with their types (every field but LinkToken).
func (v *scopeIDs) refs() []idRef {
	return []idRef{{"Account", &v.Partner}, {"Account", &v.Customer}, {"Account", &v.Applicant}, {"User", &v.User},
		{"Migration", &v.Migration}, {"Unbinding", &v.Unbinding}, {"Invitation", &v.Invitation}, {"CustomerGroup", &v.Group},
		{"SharingUnit", &v.Unit}, {"ApplicationLink", &v.Link}, {"LinkApplication", &v.Application}, {"WebhookEndpoint", &v.Webhook},
		{"VoucherTemplate", &v.Template}, {"VoucherIssuance", &v.Issuance}, {"Voucher", &v.Voucher}, {"BulkJob", &v.BulkJob},
		{"Resource", &v.Resource}, {"Expenditure", &v.Expenditure}, {"PartnerBill", &v.Bill}, {"Incentive", &v.Incentive},
		{"CustomerBill", &v.CustomerBill}, {"RatingRule", &v.RatingRule}, {"InboxMessage", &v.InboxMessage},
		{"Delivery", &v.Delivery}, {"ApiToken", &v.ApiToken}}
}

// view is the tenant's objects seen from partner and customer.
func (tn *tenant) view(partner, customer testkit.Party) scopeIDs {
	return scopeIDs{Partner: gid(partner), Customer: gid(customer), Applicant: gid(tn.applicant), User: tn.userID,
		Migration: tn.migration, Unbinding: tn.unbinding, Invitation: tn.invitation, Group: tn.group, Unit: tn.unit,
		Link: tn.link, Application: tn.application, Webhook: tn.webhook, Template: tn.template, Issuance: tn.issuance,
		Voucher: tn.voucher, BulkJob: tn.bulkJob, Resource: tn.resource, Expenditure: tn.expenditure, Bill: tn.r1Bill,
		Incentive: tn.incentive, CustomerBill: tn.customerBill, RatingRule: tn.ratingRule, InboxMessage: tn.inboxMessage,
		Delivery: tn.delivery, ApiToken: tn.extraTokenID, LinkToken: tn.linkToken}
}

// unknown is v with every ID replaced by an unknown ID of the same type
// (and the link token by one nobody holds): what a foreign ID must be
// indistinguishable from.
func (v scopeIDs) unknown() scopeIDs {
	u := v
	for i, ref := range u.refs() {
		if *ref.id != "" {
			*ref.id = ids.Encode(ref.typ, 1<<40+int64(i))
		}
	}
	if u.LinkToken != "" {
		u.LinkToken = "al_" + strings.Repeat("Q", 40)
	}
	return u
}

// observer is someone who must not see some markers: a user of another
// tenant (strict: a foreign ID must also answer as an unknown one does) or
// a customer or reseller of A that must not see its siblings.
type observer struct {
	name      string
	party     testkit.Party
	strict    bool
	forbidden []string
	own       scopeIDs
	foreign   []scopeIDs
}

// canaryRun is the whole run: the product, the two tenants, what was
// exercised, and the secrets the log scan looks for.
type canaryRun struct {
	t        *testing.T
	api      *testkit.API
	tr       *testkit.Tree
	w        *testkit.Workers
	logs     *testkit.SyncBuffer
	schema   *ast.Schema
	a, b     *tenant
	cur      models.Month
	prev     models.Month
	usage    time.Time // a moment of the previous month
	secrets  map[string]string
	selCache map[string]string
	// exercised: the root fields ("Query.x", "Subscription.y") and REST
	// routes called by an observer; reached: those that answered data to
	// one of another tenant; positive: the Query fields in whose answer to
	// A's admin the canary showed.
	exercised, reached, positive map[string]bool
}

func (r *canaryRun) secret(what, s string) {
	if s != "" {
		r.secrets[s] = what
	}
}

// ---------------------------------------------------------------- HTTP ----

// httpAnswer is one HTTP exchange, everything the caller saw.
type httpAnswer struct {
	status int
	header http.Header
	body   []byte
}

// bytes is the header and the body, for scanning.
func (h httpAnswer) bytes() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d\n", h.status)
	_ = h.header.Write(&b)
	b.Write(h.body)
	if strings.HasPrefix(h.header.Get("Content-Type"), "application/pdf") {
		b.WriteString(pdfText(h.body))
	}
	return b.Bytes()
}

// pdfText is the text of a PDF (its streams are compressed, so the raw
// bytes would hide a name).
func pdfText(b []byte) string {
	rd, err := pdf.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return ""
	}
	text, err := rd.GetPlainText()
	if err != nil {
		return ""
	}
	raw, _ := io.ReadAll(text)
	return string(raw)
}

func (r *canaryRun) send(method, path, token, contentType string, body []byte) httpAnswer {
	r.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, r.api.Server.URL+path, bytes.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return httpAnswer{status: resp.StatusCode, header: resp.Header, body: raw}
}

// gql posts a GraphQL request and returns the raw exchange and its parse.
func (r *canaryRun) gql(token, query string, vars map[string]any) (httpAnswer, *testkit.Response) {
	r.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	h := r.send(http.MethodPost, "/graphql", token, "application/json", body)
	var resp testkit.Response
	if err := json.Unmarshal(h.body, &resp); err != nil {
		r.t.Fatalf("answer %d is not JSON: %.300s", h.status, h.body)
	}
	resp.Status = h.status
	return h, &resp
}

// must runs a setup request that must succeed and decodes its data.
func (r *canaryRun) must(p testkit.Party, query string, vars map[string]any, out any) {
	r.t.Helper()
	r.api.MustDo(r.t, p.Token, query, vars, out)
}

// leaks reports the forbidden markers found in data (case-insensitively:
// addresses may be lowered on the way).
func leaks(data []byte, forbidden []string) []string {
	low := bytes.ToLower(data)
	var out []string
	for _, m := range forbidden {
		if i := bytes.Index(low, []byte(strings.ToLower(m))); i >= 0 {
			from, to := max(0, i-100), min(len(data), i+len(m)+100)
			out = append(out, fmt.Sprintf("%q in …%s…", m, data[from:to]))
		}
	}
	return out
}

// scan fails the test for every forbidden marker o finds in data, naming
// whose texts (A's codes) it found.
func (r *canaryRun) scan(o *observer, what string, data []byte) {
	r.t.Helper()
	for _, l := range leaks(data, o.forbidden) {
		var codes []string
		low := bytes.ToLower(data)
		for _, w := range whoCodes {
			if bytes.Contains(low, []byte(r.a.marker(w))) {
				codes = append(codes, w)
			}
		}
		r.t.Errorf("LEAK to %s through %s (A's texts of %v): %s", o.name, what, codes, l)
	}
}

// ---------------------------------------------------------- selections ----

// selection is a selection set of every field of typ that takes no
// required argument, objects depth levels down (connections, edges and
// page info do not count). Interfaces spread every possible type (the
// schema's only one, Node, is asked through node(id), which spreads the
// ID's type alone: fields of one name differ in type across Node's types).
//
// A safe selection leaves out the connections of objects below the first
// one: an account outside the caller's scope (an applicant, a migration's
// source) answers them with errors, and their non-null types then wipe the
// whole answer up to the root, hiding what the rest of it would show.
func (r *canaryRun) selection(typ string, depth int, safe bool) string {
	return r.sel(typ, depth, safe, false)
}

func (r *canaryRun) sel(typ string, depth int, safe, nested bool) string {
	key := fmt.Sprintf("%s/%d/%v/%v", typ, depth, safe, nested)
	if s, ok := r.selCache[key]; ok {
		return s
	}
	def := r.schema.Types[typ]
	var parts []string
	switch def.Kind {
	case ast.Scalar, ast.Enum:
		return ""
	case ast.Interface, ast.Union:
		parts = append(parts, "__typename")
		for _, impl := range r.schema.GetPossibleTypes(def) {
			parts = append(parts, "... on "+impl.Name+" "+r.sel(impl.Name, depth, safe, nested))
		}
	case ast.Object:
		for _, f := range def.Fields {
			if strings.HasPrefix(f.Name, "__") || requiresArgs(f) {
				continue
			}
			ft := r.schema.Types[f.Type.Name()]
			if ft.Kind == ast.Scalar || ft.Kind == ast.Enum {
				parts = append(parts, f.Name)
				continue
			}
			d := depth
			if !wrapperType(ft.Name) {
				d--
			}
			if d < 0 || safe && nested && strings.HasSuffix(ft.Name, "Connection") {
				continue
			}
			parts = append(parts, f.Name+" "+r.sel(ft.Name, d, safe, nested || !wrapperType(typ)))
		}
	}
	s := "{ " + strings.Join(parts, " ") + " }"
	r.selCache[key] = s
	return s
}

func requiresArgs(f *ast.FieldDefinition) bool {
	for _, a := range f.Arguments {
		if a.Type.NonNull && a.DefaultValue == nil {
			return true
		}
	}
	return false
}

func wrapperType(name string) bool {
	return strings.HasSuffix(name, "Connection") || strings.HasSuffix(name, "Edge") || name == "PageInfo"
}

// rootQuery is an operation calling one root field of op (query or
// subscription) with args as variables and a deep selection (see
// selection).
func (r *canaryRun) rootQuery(op, field string, args map[string]any, depth int, safe bool) string {
	def := r.schema.Query
	if op == "subscription" {
		def = r.schema.Subscription
	}
	f := def.Fields.ForName(field)
	if f == nil {
		r.t.Fatalf("no %s field %s", op, field)
	}
	var decls, uses []string
	for _, a := range f.Arguments {
		if _, ok := args[a.Name]; ok {
			decls = append(decls, "$"+a.Name+": "+a.Type.String())
			uses = append(uses, a.Name+": $"+a.Name)
		}
	}
	for k := range args {
		if f.Arguments.ForName(k) == nil {
			r.t.Fatalf("%s.%s has no argument %s", op, field, k)
		}
	}
	q := op + " Canary"
	if len(decls) > 0 {
		q += "(" + strings.Join(decls, ", ") + ")"
	}
	call := field
	if len(uses) > 0 {
		call += "(" + strings.Join(uses, ", ") + ")"
	}
	sel := r.selection(f.Type.Name(), depth, safe)
	if id, ok := args["id"].(string); ok && field == "node" {
		typ, _, err := ids.Parse(id)
		if err != nil {
			r.t.Fatalf("node(%q): %v", id, err)
		}
		sel = "{ __typename ... on " + typ + " " + r.selection(typ, depth, safe) + " }"
	}
	return q + " { " + call + " " + sel + " }"
}

// ----------------------------------------------------------- the table ----

// queryRow is one Query field of the table and the argument sets it is
// called with from a view (a row with no ID argument is called once, in
// the observer's own scope).
type queryRow struct {
	field string
	args  func(v scopeIDs, r *canaryRun) []map[string]any
	// dataFree marks fields whose answer holds no tenant data at all: A's
	// admin is not expected to see the canary through them.
	dataFree bool
}

type vars = map[string]any

func none(scopeIDs, *canaryRun) []map[string]any { return []map[string]any{{}} }

// each keeps the argument sets whose IDs are all set.
func each(sets ...map[string]any) []map[string]any {
	var out []map[string]any
next:
	for _, s := range sets {
		for _, v := range s {
			if v == "" {
				continue next
			}
			if m, ok := v.(map[string]any); ok {
				for _, w := range m {
					if w == "" {
						continue next
					}
				}
			}
		}
		out = append(out, s)
	}
	return out
}

// queryTable covers every field of Query; TestCanary fails for a field it
// lacks.
var queryTable = []queryRow{
	{field: "node", args: func(v scopeIDs, _ *canaryRun) []map[string]any {
		var out []map[string]any
		for _, ref := range v.refs() {
			out = append(out, each(vars{"id": *ref.id})...)
		}
		return out
	}},
	{field: "me", args: none},
	{field: "account", args: func(v scopeIDs, _ *canaryRun) []map[string]any {
		return each(vars{"id": v.Partner}, vars{"id": v.Customer}, vars{"id": v.Applicant})
	}},
	{field: "auditLog", args: func(v scopeIDs, _ *canaryRun) []map[string]any {
		return each(vars{"accountId": v.Partner, "includeDescendants": true, "first": 200}, vars{"accountId": v.Customer, "first": 200})
	}},
	{field: "creditLedger", args: func(v scopeIDs, _ *canaryRun) []map[string]any {
		return each(vars{"accountId": v.Partner}, vars{"accountId": v.Customer})
	}},
	{field: "inbox", args: func(scopeIDs, *canaryRun) []map[string]any { return []map[string]any{{"first": 200}} }},
	{field: "unreadCount", args: none, dataFree: true},
	{field: "notificationPreferences", args: none, dataFree: true},
	{field: "unbinding", args: func(v scopeIDs, _ *canaryRun) []map[string]any { return each(vars{"id": v.Unbinding}) }},
	{field: "invitations", args: func(scopeIDs, *canaryRun) []map[string]any { return []map[string]any{{"first": 100}} }},
	{field: "applicationLinks", args: func(v scopeIDs, _ *canaryRun) []map[string]any { return each(vars{"partnerId": v.Partner}) }},
	{field: "linkApplications", args: func(v scopeIDs, _ *canaryRun) []map[string]any {
		return each(vars{"partnerId": v.Partner}, vars{"linkId": v.Link}, vars{"applicantId": v.Applicant})
	}},
	{field: "webhookEndpoints", args: func(v scopeIDs, _ *canaryRun) []map[string]any { return each(vars{"partnerId": v.Partner}) }},
	{field: "webhookEventTypes", args: none, dataFree: true},
	{field: "bulkJobs", args: func(v scopeIDs, _ *canaryRun) []map[string]any { return each(vars{"partnerId": v.Partner}) }},
	{field: "bulkChangeTemplate", dataFree: true, args: func(scopeIDs, *canaryRun) []map[string]any {
		return []map[string]any{{"kind": "BUDGETS"}, {"kind": "CREDIT"}, {"kind": "OVERSPEND_ACTIONS"}}
	}},
	{field: "applicationLinkPreview", args: func(v scopeIDs, _ *canaryRun) []map[string]any { return each(vars{"token": v.LinkToken}) }},
	{field: "migration", args: func(v scopeIDs, _ *canaryRun) []map[string]any { return each(vars{"id": v.Migration}) }},
	{field: "migrations", args: func(scopeIDs, *canaryRun) []map[string]any {
		return []map[string]any{{}, {"role": "RECEIVER"}, {"role": "SOURCE"}, {"role": "APPROVER"}}
	}},
	{field: "migrationTemplate", args: none, dataFree: true},
	{field: "dataTransferStatement", dataFree: true, args: func(scopeIDs, *canaryRun) []map[string]any {
		return []map[string]any{{}, {"locale": "zh-CN"}}
	}},
	{field: "deliveries", args: func(v scopeIDs, _ *canaryRun) []map[string]any {
		return each(vars{"accountId": v.Partner, "first": 200}, vars{"accountId": v.Customer, "first": 200})
	}},
	{field: "expenditureSummary", args: func(v scopeIDs, r *canaryRun) []map[string]any {
		p := r.period()
		var out []map[string]any
		for _, g := range []string{"CUSTOMER", "PRODUCT", "DAY", "MONTH"} {
			out = append(out, each(vars{"groupBy": g, "partnerId": v.Partner, "period": p})...)
		}
		return append(out, each(vars{"groupBy": "PRODUCT", "customerId": v.Customer, "period": p}, vars{"groupBy": "CUSTOMER"})...)
	}},
	{field: "expenditures", args: func(v scopeIDs, r *canaryRun) []map[string]any {
		p := r.period()
		return each(vars{"filter": vars{"partnerId": v.Partner, "period": p}, "first": 200},
			vars{"filter": vars{"customerId": v.Customer, "period": p}, "first": 200}, vars{"first": 200})
	}},
	{field: "partnerBills", args: func(v scopeIDs, r *canaryRun) []map[string]any {
		return each(vars{"partnerId": v.Partner, "month": r.prev.String()})
	}},
	{field: "bills", args: func(v scopeIDs, _ *canaryRun) []map[string]any {
		return each(vars{}, vars{"partnerId": v.Partner})
	}},
	{field: "ratingRules", args: func(v scopeIDs, _ *canaryRun) []map[string]any { return each(vars{"partnerId": v.Partner}) }},
	{field: "customerBills", args: func(v scopeIDs, _ *canaryRun) []map[string]any {
		return each(vars{}, vars{"partnerId": v.Partner}, vars{"customerId": v.Customer})
	}},
	{field: "marginReport", args: func(v scopeIDs, r *canaryRun) []map[string]any {
		return each(vars{"month": r.prev.String()}, vars{"partnerId": v.Partner, "month": r.prev.String()})
	}},
	{field: "incentivePolicies", args: none, dataFree: true},
	{field: "incentives", args: func(v scopeIDs, _ *canaryRun) []map[string]any {
		return each(vars{}, vars{"partnerId": v.Partner})
	}},
	{field: "voucherPool", args: func(v scopeIDs, _ *canaryRun) []map[string]any { return each(vars{"partnerId": v.Partner}) }},
	{field: "vouchers", args: func(v scopeIDs, _ *canaryRun) []map[string]any {
		return each(vars{"partnerId": v.Partner}, vars{"customerId": v.Customer})
	}},
	{field: "voucherRedemptions", args: func(v scopeIDs, r *canaryRun) []map[string]any {
		return each(vars{"voucherId": v.Voucher}, vars{"customerId": v.Customer, "period": r.period()})
	}},
	{field: "voucherTemplates", args: func(v scopeIDs, _ *canaryRun) []map[string]any {
		return each(vars{"partnerId": v.Partner, "includeRetired": true})
	}},
	{field: "voucherIssuances", args: func(v scopeIDs, _ *canaryRun) []map[string]any { return each(vars{"partnerId": v.Partner}) }},
}

func (r *canaryRun) period() map[string]any {
	return vars{"from": r.prev.String(), "to": r.cur.String()}
}

// queryDepth is how deep the table's selections go below a root field.
const queryDepth = 2

// ------------------------------------------------------------ the test ----

func TestCanary_TenantIsolation(t *testing.T) {
	start := time.Now()
	r := newCanaryRun(t)
	r.seedTree(r.a)
	r.seedTree(r.b)

	// Watchers subscribe before the activity, so a misrouted event of A
	// would reach them.
	watches := r.openWatches()
	// Some deliveries fail for a while, so the failure paths log too.
	r.w.SMTP.RejectNext(451, "4.3.0 mailbox busy, try again", 3)
	r.w.SMS.Script(http.StatusServiceUnavailable, http.StatusServiceUnavailable)
	r.a.hook.mu.Lock()
	r.a.hook.failures = 2
	r.a.hook.mu.Unlock()
	r.seedActivity(r.a)
	r.seedActivity(r.b)
	r.seedBilling()
	r.quiesce()
	r.collectObjects(r.a)
	r.collectObjects(r.b)
	r.finalMarks(watches)

	observers := r.observers()
	r.run("Queries", func() { r.runQueries(observers) })
	r.run("Positive", r.checkPositive)
	r.run("Subscriptions", func() { r.checkWatches(watches, observers) })
	r.run("Exports", func() { r.runExports(observers) })
	r.run("Mutations", func() { r.runMutations(observers) })
	r.run("Probes", func() { r.runProbes(observers) })
	r.quiesce()
	r.run("Notifications", func() { r.checkNotifications(observers) })
	r.run("Coverage", r.checkCoverage)
	r.run("LogScan", r.scanLogs)
	t.Logf("canary run: %d exercised root fields and routes, %s", len(r.exercised), time.Since(start).Round(time.Millisecond))
}

// run runs f as subtest name, with r reporting to the subtest.
func (r *canaryRun) run(name string, f func()) {
	parent := r.t
	parent.Run(name, func(t *testing.T) {
		r.t = t
		defer func() { r.t = parent }()
		f()
	})
}

func newCanaryRun(t *testing.T) *canaryRun {
	logs := &testkit.SyncBuffer{}
	// Some services log through slog's default logger (the API's
	// expenditure ingestion): capture it too for the run.
	prev := slog.Default()
	slog.SetDefault(testkit.NewLogger(logs))
	t.Cleanup(func() { slog.SetDefault(prev) })
	st := testkit.NewStore(t, store.Options{Logger: testkit.NewLogger(logs)})
	tr := testkit.NewTreeOn(t, st)
	api := testkit.NewAPIWith(t, tr, server.Options{Monitoring: true, Limits: server.Limits{
		Depth: 40, Fields: 100_000, ParserTokens: 1 << 21, Complexity: 1 << 40, Aliases: 100}}, testkit.APIOptions{LogWriter: logs})
	w := testkit.StartWorkers(t, tr, testkit.WorkerOptions{RedisURL: api.RedisURL, Prefix: api.Prefix, LogWriter: logs,
		SMTPUsername: "relay-user", SMTPPassword: canarySMTPPassword})
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	hexa := hex.EncodeToString(b)
	_, _ = rand.Read(b)
	hexb := hex.EncodeToString(b)
	usage := time.Now().UTC()
	cur := models.MonthOf(usage, testkit.Shanghai)
	r := &canaryRun{t: t, api: api, tr: tr, w: w, logs: logs, schema: graph.NewExecutableSchema(graph.Config{}).Schema(),
		cur: cur, prev: cur.Prev(), usage: cur.Prev().Start(testkit.Shanghai).Add(36 * time.Hour),
		secrets: map[string]string{}, selCache: map[string]string{},
		exercised: map[string]bool{}, reached: map[string]bool{}, positive: map[string]bool{},
		a: &tenant{name: "A", prefix: "canary-" + hexa, domain: "alpha.example", phoneBase: 8613900000000},
		b: &tenant{name: "B", prefix: "bravo-" + hexb, domain: "bravo.example", phoneBase: 8613800000000},
	}
	r.a.hook, r.b.hook = newHookSink(t), newHookSink(t)
	r.secret("SMTP password", canarySMTPPassword)
	for name, p := range map[string]testkit.Party{"platform": tr.Platform, "D1": tr.D1, "R1": tr.R1, "R2": tr.R2, "C1": tr.C1,
		"C2": tr.C2, "C3": tr.C3, "S1": tr.S1, "C4": tr.C4, "D2": tr.D2, "C5": tr.C5, "P1": tr.P1} {
		r.secret("token of "+name, p.Token)
	}
	return r
}

// -------------------------------------------------------------- seeding ----

// party creates an account of tn named for who, with contact details and
// tags carrying its marker, and its ADMIN user.
func (r *canaryRun) party(tn *tenant, who string, kind models.AccountKind, parent int64, locale string) testkit.Party {
	t := r.t
	t.Helper()
	m := tn.marker(who)
	email, phone := m+"contact@"+tn.domain, tn.nextPhone()
	a, err := r.tr.Accounts.Create(r.tr.Platform.Ctx, accounts.CreateInput{Kind: kind, ParentID: parent, Name: m + " " + strings.ToLower(string(kind)),
		Email: &email, Phone: &phone, Tags: []accounts.Tag{{Key: m + "cost-center", Value: m + "value"}}})
	if err != nil {
		t.Fatalf("create %s: %v", m, err)
	}
	return r.user(tn, who, a.ID, locale, models.RoleAdmin, "admin")
}

// user adds a user to account with who's marker in its name and email.
func (r *canaryRun) user(tn *tenant, who string, account int64, locale string, role models.Role, label string) testkit.Party {
	r.t.Helper()
	m := tn.marker(who)
	phone := tn.nextPhone()
	p := r.tr.AddUserWith(r.t, accounts.CreateUserInput{AccountID: account, Email: m + label + "@" + tn.domain, Phone: &phone,
		Name: m + " " + label, Roles: []models.Role{role}, Locale: locale})
	r.secret("token of "+m+label, p.Token)
	return p
}

// seedTree builds tn's tree: accounts, users, credit, budgets, unfrozen
// customers, a webhook endpoint and a migration batch awaiting the
// distributor (so watchers can subscribe to it).
func (r *canaryRun) seedTree(tn *tenant) {
	t := r.t
	t.Helper()
	plat := r.tr.Platform.Account.ID
	tn.dist = r.party(tn, "dist", models.KindDistributor, plat, "en-US")
	tn.viewer = r.user(tn, "viewer", tn.dist.Account.ID, "en-US", models.RoleViewer, "viewer")
	tn.r1 = r.party(tn, "r1", models.KindReseller, tn.dist.Account.ID, "zh-CN")
	tn.r2 = r.party(tn, "r2", models.KindReseller, tn.dist.Account.ID, "en-US")
	tn.c1 = r.party(tn, "c1", models.KindCustomer, tn.r1.Account.ID, "zh-CN")
	tn.c1b = r.party(tn, "c1b", models.KindCustomer, tn.r1.Account.ID, "en-US")
	tn.c2 = r.party(tn, "c2", models.KindCustomer, tn.r2.Account.ID, "en-US")
	tn.c3 = r.party(tn, "c3", models.KindCustomer, tn.dist.Account.ID, "en-US")
	tn.c3b = r.party(tn, "c3b", models.KindCustomer, tn.dist.Account.ID, "en-US")
	tn.invitee = r.party(tn, "invitee", models.KindPersonal, plat, "en-US")
	tn.applicant = r.party(tn, "applicant", models.KindPersonal, plat, "en-US")
	tn.userID = ids.Encode("User", tn.viewer.User.ID)

	r.must(r.tr.Platform, `mutation($a: ID!) { setCreditLimit(accountId: $a, amount: "100000") { id } }`, vars{"a": gid(tn.dist)}, nil)
	for _, c := range []struct {
		by, child testkit.Party
		amount    string
	}{{tn.dist, tn.r1, "20000"}, {tn.dist, tn.r2, "20000"}, {tn.dist, tn.c3, "5000"}, {tn.dist, tn.c3b, "5000"},
		{tn.r1, tn.c1, "3000"}, {tn.r1, tn.c1b, "3000"}, {tn.r2, tn.c2, "3000"}} {
		r.must(c.by, `mutation($a: ID!, $n: Decimal!) { allocateCredit(childId: $a, amount: $n) { id } }`, vars{"a": gid(c.child), "n": c.amount}, nil)
	}
	for _, b := range []struct {
		by, customer        testkit.Party
		typ, amount, action string
	}{{tn.r1, tn.c1, "MONTHLY", "100", "FREEZE_ACCOUNT"}, {tn.r1, tn.c1b, "MONTHLY", "10000", "NONE"}, {tn.r2, tn.c2, "MONTHLY", "10000", "NONE"},
		{tn.dist, tn.c3, "ONE_TIME", "10000", "NONE"}, {tn.dist, tn.c3b, "MONTHLY", "10000", "NONE"}} {
		r.must(b.by, `mutation($in: BudgetInput!) { setBudget(input: $in) { id } }`, vars{"in": vars{"customerId": gid(b.customer), "type": b.typ,
			"amount": b.amount, "thresholds": []int{50, 80, 100}, "overspendAction": b.action}}, nil)
		r.must(b.by, `mutation($a: ID!) { unfreezeAccount(accountId: $a) { status } }`, vars{"a": gid(b.customer)}, nil)
	}
	for _, p := range []testkit.Party{tn.c1, tn.r1, tn.dist} {
		r.must(p, `mutation { setNotificationPreference(eventType: "budget.threshold_crossed", channel: SMS, enabled: true) { enabled } }`, nil, nil)
	}

	var types struct{ WebhookEventTypes []string }
	r.must(tn.dist, `{ webhookEventTypes }`, nil, &types)
	var hook struct {
		CreateWebhookEndpoint struct {
			Secret   string
			Endpoint struct{ ID string }
		}
	}
	r.must(tn.dist, `mutation($p: ID!, $u: String!, $e: [String!]!, $d: String) { createWebhookEndpoint(partnerId: $p, url: $u, eventTypes: $e, description: $d) {
		secret endpoint { id } } }`, vars{"p": gid(tn.dist), "u": tn.hook.srv.URL + "/" + tn.marker("hook") + "receiver",
		"e": types.WebhookEventTypes, "d": tn.marker("hook") + "ERP bridge"}, &hook)
	tn.webhook = hook.CreateWebhookEndpoint.Endpoint.ID
	r.secret("webhook secret of "+tn.name, hook.CreateWebhookEndpoint.Secret)

	var mig struct{ CreateMigration struct{ ID string } }
	r.must(tn.r2, `mutation($s: ID!, $rows: [MigrationRowInput!]) { createMigration(sourceId: $s, rows: $rows) { id } }`,
		vars{"s": gid(tn.r1), "rows": []any{vars{"accountId": gid(tn.c1b), "creditToAllocate": "10"}}}, &mig)
	tn.migration = mig.CreateMigration.ID
	r.must(tn.r2, `mutation($id: ID!) { submitMigration(id: $id) { status } }`, vars{"id": tn.migration}, nil)
}

// seedActivity makes tn's partners and customers do everything that
// stores text or sends a notification.
func (r *canaryRun) seedActivity(tn *tenant) {
	t := r.t
	t.Helper()
	plat := r.tr.Platform
	r.must(plat, `mutation($id: ID!, $n: String!) { updateAccount(id: $id, input: {name: $n}) { id } }`,
		vars{"id": gid(tn.c1), "n": tn.marker("c1") + " customer renamed"}, nil)
	r.must(tn.dist, `mutation($id: ID!, $t: [TagInput!]!) { setAccountTags(accountId: $id, tags: $t) { id } }`,
		vars{"id": gid(tn.dist), "t": []any{vars{"key": tn.marker("dist") + "team", "value": tn.marker("dist") + "blue"}}}, nil)
	r.must(tn.dist, `mutation($id: ID!, $r: String!) { rejectMigration(id: $id, reason: $r) { status } }`,
		vars{"id": tn.migration, "r": tn.marker("mig") + "not this quarter"}, nil)

	var unb struct{ RequestUnbinding struct{ ID string } }
	r.must(tn.r2, `mutation($c: ID!) { requestUnbinding(customerId: $c) { id } }`, vars{"c": gid(tn.c2)}, &unb)
	tn.unbinding = unb.RequestUnbinding.ID
	r.must(tn.c2, `mutation($id: ID!, $r: String) { rejectUnbinding(id: $id, reason: $r) { status } }`,
		vars{"id": tn.unbinding, "r": tn.marker("unb") + "we stay"}, nil)
	r.must(tn.r2, `mutation($ids: [ID!]!, $r: String!) { freezeAccounts(accountIds: $ids, mode: ACCOUNT, reason: $r) { code } }`,
		vars{"ids": []string{gid(tn.c2)}, "r": tn.marker("frz") + "audit"}, nil)
	r.must(tn.r2, `mutation($ids: [ID!]!, $r: String!) { unfreezeAccounts(accountIds: $ids, reason: $r) { code } }`,
		vars{"ids": []string{gid(tn.c2)}, "r": tn.marker("frz") + "cleared"}, nil)
	r.must(tn.dist, `mutation($c: ID!, $r: String!) { setPurchaseBan(customerId: $c, banned: true, reason: $r) { id } }`,
		vars{"c": gid(tn.c3), "r": tn.marker("ban") + "unpaid invoice"}, nil)

	var grp struct{ CreateCustomerGroup struct{ ID string } }
	r.must(tn.dist, `mutation($n: String!, $a: ID!, $m: [ID!]!) { createCustomerGroup(name: $n, administratorId: $a, memberIds: $m) { id } }`,
		vars{"n": tn.marker("grp") + "east", "a": gid(tn.c3), "m": []string{gid(tn.c3), gid(tn.c3b)}}, &grp)
	tn.group = grp.CreateCustomerGroup.ID
	var unit struct{ CreateSharingUnit struct{ ID string } }
	r.must(tn.r1, `mutation($n: String!, $m: [ID!]!) { createSharingUnit(name: $n, memberIds: $m) { id } }`,
		vars{"n": tn.marker("unit") + "plan", "m": []string{gid(tn.c1)}}, &unit)
	tn.unit = unit.CreateSharingUnit.ID
	var res struct{ RegisterResource struct{ ID string } }
	r.must(plat, `mutation($c: ID!, $p: String!, $e: String!) { registerResource(customerId: $c, productCode: $p, externalId: $e) { id } }`,
		vars{"c": gid(tn.c2), "p": tn.marker("c2") + "vm", "e": tn.marker("c2") + "res-1"}, &res)
	tn.resource = res.RegisterResource.ID

	r.seedInvitation(tn)
	r.seedLinks(tn)
	r.seedVouchers(tn)
	r.seedBulk(tn)

	var tok struct{ CreateApiToken struct{ ID, Token string } }
	r.must(tn.dist, `mutation($u: ID!) { createApiToken(userId: $u, ttlHours: 24) { id token } }`, vars{"u": tn.userID}, &tok)
	tn.extraToken, tn.extraTokenID = tok.CreateApiToken.Token, tok.CreateApiToken.ID
	r.secret("API token of "+tn.name+"'s viewer", tn.extraToken)
	r.api.MustDo(t, tn.extraToken, `{ me { id } }`, nil, nil)

	// This month's records (c1's cross its budget: alerts, then the
	// overspend freeze) after the vouchers, so c3's pays; last month's for
	// the bills.
	now := time.Now().UTC()
	var recs []any
	rec := func(c testkit.Party, who, list string, at time.Time, n int) {
		m := tn.marker(who)
		recs = append(recs, vars{"externalId": fmt.Sprintf("%srec-%d", m, n), "customerId": gid(c), "productCode": m + "ecs",
			"region": m + "region", "billingMode": "PAY_PER_USE", "usageAt": at.Format(time.RFC3339Nano), "listAmount": list, "actualAmount": list})
	}
	rec(tn.c1, "c1", "60", now, 1)
	rec(tn.c1, "c1", "45", now, 2)
	rec(tn.c2, "c2", "10", now, 3)
	rec(tn.c3, "c3", "30", now, 4)
	rec(tn.c3b, "c3b", "5", now, 5)
	rec(tn.c1, "c1", "100", r.usage, 6)
	rec(tn.c2, "c2", "50", r.usage, 7)
	rec(tn.c3, "c3", "80", r.usage, 8)
	var ing struct {
		RecordExpenditures struct{ Accepted, Rejected int }
	}
	r.must(plat, `mutation($r: [ExpenditureInput!]!) { recordExpenditures(records: $r) { accepted rejected } }`, vars{"r": recs}, &ing)
	if ing.RecordExpenditures.Accepted != len(recs) {
		t.Fatalf("%s's records: %+v", tn.name, ing)
	}
}

// seedInvitation: the distributor invites the personal account by its
// admin's email; the invitee accepts with the token from the email.
func (r *canaryRun) seedInvitation(tn *tenant) {
	t := r.t
	var inv struct{ InviteCustomer struct{ ID string } }
	r.must(tn.dist, `mutation($e: String!) { inviteCustomer(email: $e) { id } }`, vars{"e": tn.invitee.User.Email}, &inv)
	tn.invitation = inv.InviteCustomer.ID
	var token string
	deadline := time.Now().Add(30 * time.Second)
	for token == "" {
		for _, m := range r.w.SMTP.Messages() {
			if len(m.To) > 0 && strings.EqualFold(m.To[0], tn.invitee.User.Email) {
				if got := tokenInLink.FindStringSubmatch(m.TextBody); got != nil {
					token = got[1]
				}
			}
		}
		if token == "" {
			if time.Now().After(deadline) {
				t.Fatalf("no invitation email reached %s", tn.invitee.User.Email)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	r.secret("invitation token of "+tn.name, token)
	r.must(tn.invitee, `mutation($t: String!) { acceptInvitation(token: $t) { id } }`, vars{"t": token}, nil)
}

// seedLinks: an application link the applicant applies through and the
// distributor rejects, and a second link, revoked.
func (r *canaryRun) seedLinks(tn *tenant) {
	expires := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	const createQ = `mutation($p: ID!, $e: Time!) { createApplicationLink(partnerId: $p, kind: CUSTOMER, expiresAt: $e) { token link { id } } }`
	var link, other struct {
		CreateApplicationLink struct {
			Token string
			Link  struct{ ID string }
		}
	}
	r.must(tn.dist, createQ, vars{"p": gid(tn.dist), "e": expires}, &link)
	r.must(tn.dist, createQ, vars{"p": gid(tn.dist), "e": expires}, &other)
	tn.link, tn.linkToken = link.CreateApplicationLink.Link.ID, link.CreateApplicationLink.Token
	tn.revokedLinkToken = other.CreateApplicationLink.Token
	r.secret("link token of "+tn.name, tn.linkToken)
	r.secret("revoked link token of "+tn.name, tn.revokedLinkToken)
	r.must(tn.dist, `mutation($id: ID!) { revokeApplicationLink(id: $id) { id } }`, vars{"id": other.CreateApplicationLink.Link.ID}, nil)
	var app struct{ ApplyWithLink struct{ ID string } }
	r.must(tn.applicant, `mutation($t: String!) { applyWithLink(token: $t) { id } }`, vars{"t": tn.linkToken}, &app)
	tn.application = app.ApplyWithLink.ID
	r.must(tn.dist, `mutation($id: ID!, $r: String!) { rejectLinkApplication(id: $id, reason: $r) { id } }`,
		vars{"id": tn.application, "r": tn.marker("link") + "not a fit"}, nil)
}

// seedVouchers: quota, a template, vouchers for c3 and c3b, c3b's
// cancelled.
func (r *canaryRun) seedVouchers(tn *tenant) {
	expires := time.Now().Add(90 * 24 * time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339)
	r.must(r.tr.Platform, `mutation($p: ID!, $e: Time!) { grantVoucherQuota(partnerId: $p, amount: "1000", expiresAt: $e) { quota } }`,
		vars{"p": gid(tn.dist), "e": expires}, nil)
	var tpl struct{ CreateVoucherTemplate struct{ ID string } }
	r.must(tn.dist, `mutation($p: ID!, $in: VoucherTemplateInput!) { createVoucherTemplate(partnerId: $p, input: $in) { id } }`,
		vars{"p": gid(tn.dist), "in": vars{"name": tn.marker("vch") + "welcome", "faceValue": "50", "validDays": 30,
			"reason": tn.marker("vch") + "new customers"}}, &tpl)
	tn.template = tpl.CreateVoucherTemplate.ID
	var iss struct {
		IssueVouchers struct {
			ID      string
			Results []struct {
				Code    string
				Voucher *struct{ ID string }
			}
		}
	}
	r.must(tn.dist, `mutation($t: ID!, $c: [ID!]!) { issueVouchers(templateId: $t, customerIds: $c) { id results { code voucher { id } } } }`,
		vars{"t": tn.template, "c": []string{gid(tn.c3), gid(tn.c3b)}}, &iss)
	res := iss.IssueVouchers.Results
	if len(res) != 2 || res[0].Voucher == nil || res[1].Voucher == nil {
		r.t.Fatalf("%s's vouchers: %+v", tn.name, iss)
	}
	tn.issuance, tn.voucher, tn.cancelledVoucher = iss.IssueVouchers.ID, res[0].Voucher.ID, res[1].Voucher.ID
	r.must(tn.dist, `mutation($id: ID!, $r: String!) { cancelVoucher(id: $id, reason: $r) { status } }`,
		vars{"id": tn.cancelledVoucher, "r": tn.marker("vchb") + "customer asked"}, nil)
}

// seedBulk: a budgets upload with a valid row and one rejected (its
// reference is kept as written), run as the worker would.
func (r *canaryRun) seedBulk(tn *tenant) {
	t := r.t
	var tpl struct{ BulkChangeTemplate string }
	r.must(tn.dist, `{ bulkChangeTemplate(kind: BUDGETS) }`, nil, &tpl)
	header := strings.SplitN(tpl.BulkChangeTemplate, "\r\n", 2)[0]
	csv := header + "\r\n" + gid(tn.c3b) + ",MONTHLY,9000.00,,\r\n" + tn.marker("bulk") + "bogus-ref,MONTHLY,1.00,,\r\n"
	resp := r.api.Upload(t, tn.dist.Token, `mutation($p: ID!, $f: Upload!) { uploadBulkChanges(partnerId: $p, kind: BUDGETS, file: $f) { id valid rejected } }`,
		vars{"p": gid(tn.dist)}, "f", tn.marker("bulk")+"budgets.csv", []byte(csv))
	var up struct {
		UploadBulkChanges struct {
			ID              string
			Valid, Rejected int
		}
	}
	resp.Decode(t, &up)
	if up.UploadBulkChanges.Valid != 1 || up.UploadBulkChanges.Rejected != 1 {
		t.Fatalf("%s's bulk upload: %+v %+v", tn.name, up, resp.Errors)
	}
	tn.bulkJob = up.UploadBulkChanges.ID
	key, err := ids.Decode(tn.bulkJob, bulk.TypeJob)
	if err != nil {
		t.Fatal(err)
	}
	svc := bulk.New(r.tr.Store, r.api.Guard, credit.New(r.tr.Store, testkit.Shanghai), bulk.Options{PublicURL: "https://partner.test",
		Log: testkit.NewLogger(r.logs)})
	if _, err := svc.Run(context.Background(), key); err != nil {
		t.Fatal(err)
	}
}

// seedBilling runs last month's bills for everyone (an incentive policy
// first), rating rules and customer bills of both tenants, and A's and B's
// payout applications, rejected with a reason.
func (r *canaryRun) seedBilling() {
	plat := r.tr.Platform
	month := r.prev.String()
	r.must(plat, `mutation($m: Month!) { createIncentivePolicy(name: "Standard rebate", effectiveMonth: $m, tiers: [{threshold: "0", percent: "2"}]) { id } }`,
		vars{"m": month}, nil)
	r.must(plat, `mutation($m: Month!) { generatePartnerBills(month: $m) }`, vars{"m": month}, nil)
	r.must(plat, `mutation($m: Month!) { issuePartnerBills(month: $m) }`, vars{"m": month}, nil)
	for _, tn := range []*tenant{r.a, r.b} {
		var rule struct{ CreateRatingRule struct{ ID string } }
		r.must(tn.r1, `mutation($p: ID!, $c: String, $m: Month!) { createRatingRule(partnerId: $p, productCode: $c, percent: "-10", effectiveMonth: $m) { id } }`,
			vars{"p": gid(tn.r1), "c": tn.marker("rule") + "ecs", "m": month}, &rule)
		tn.ratingRule = rule.CreateRatingRule.ID
		r.must(tn.r1, `mutation($p: ID, $m: Month!) { generateCustomerBills(partnerId: $p, month: $m) }`, vars{"p": gid(tn.r1), "m": month}, nil)
		r.must(tn.dist, `mutation($p: ID, $m: Month!) { generateCustomerBills(partnerId: $p, month: $m) }`, vars{"p": gid(tn.dist), "m": month}, nil)
		var inc struct {
			Incentives struct {
				Edges []struct{ Node struct{ ID string } }
			}
		}
		r.must(tn.dist, `query($p: ID) { incentives(partnerId: $p) { edges { node { id } } } }`, vars{"p": gid(tn.dist)}, &inc)
		if len(inc.Incentives.Edges) == 0 {
			r.t.Fatalf("%s has no incentive", tn.name)
		}
		tn.incentive = inc.Incentives.Edges[0].Node.ID
		r.must(tn.dist, `mutation($id: ID!) { applyForPayout(incentiveId: $id) { status } }`, vars{"id": tn.incentive}, nil)
		r.must(plat, `mutation($id: ID!, $r: String!) { rejectPayout(incentiveId: $id, reason: $r) { status } }`,
			vars{"id": tn.incentive, "r": tn.marker("inc") + "documents missing"}, nil)
	}
}

// collectObjects reads back the IDs of tn's objects the seed did not name:
// bills, a record, an inbox message and a delivery of its distributor's
// admin.
func (r *canaryRun) collectObjects(tn *tenant) {
	t := r.t
	var bills struct {
		PartnerBills []struct {
			ID      string
			Partner struct{ ID string }
		}
	}
	r.must(tn.dist, `query($p: ID!, $m: Month!) { partnerBills(partnerId: $p, month: $m) { id partner { id } } }`,
		vars{"p": gid(tn.dist), "m": r.prev.String()}, &bills)
	for _, b := range bills.PartnerBills {
		switch b.Partner.ID {
		case gid(tn.dist):
			tn.distBill = b.ID
		case gid(tn.r1):
			tn.r1Bill = b.ID
		}
	}
	var cb struct {
		CustomerBills struct {
			Edges []struct{ Node struct{ ID string } }
		}
	}
	r.must(tn.r1, `query($c: ID) { customerBills(customerId: $c) { edges { node { id } } } }`, vars{"c": gid(tn.c1)}, &cb)
	var ex struct {
		Expenditures struct {
			Edges []struct{ Node struct{ ID string } }
		}
	}
	r.must(tn.r1, `query($f: ExpenditureFilter) { expenditures(filter: $f) { edges { node { id } } } }`, vars{"f": vars{"customerId": gid(tn.c1)}}, &ex)
	var in struct {
		Inbox struct {
			Edges []struct{ Node struct{ ID string } }
		}
	}
	r.must(tn.dist, `{ inbox { edges { node { id } } } }`, nil, &in)
	var dl struct {
		Deliveries struct {
			Edges []struct{ Node struct{ ID string } }
		}
	}
	r.must(tn.dist, `query($a: ID!) { deliveries(accountId: $a, channel: EMAIL) { edges { node { id } } } }`, vars{"a": gid(tn.dist)}, &dl)
	if tn.distBill == "" || tn.r1Bill == "" || len(cb.CustomerBills.Edges) == 0 || len(ex.Expenditures.Edges) == 0 ||
		len(in.Inbox.Edges) == 0 || len(dl.Deliveries.Edges) == 0 {
		t.Fatalf("%s's objects: bills %+v, customer bills %+v, records %d, inbox %d, deliveries %d", tn.name, bills, cb,
			len(ex.Expenditures.Edges), len(in.Inbox.Edges), len(dl.Deliveries.Edges))
	}
	tn.customerBill, tn.expenditure = cb.CustomerBills.Edges[0].Node.ID, ex.Expenditures.Edges[0].Node.ID
	tn.inboxMessage, tn.delivery = in.Inbox.Edges[0].Node.ID, dl.Deliveries.Edges[0].Node.ID
}

// quiesce waits until the outbox is relayed, no task is waiting or running
// and every delivery is final, twice in a row.
func (r *canaryRun) quiesce() {
	t := r.t
	ctx := context.Background()
	deadline := time.Now().Add(90 * time.Second)
	calm := 0
	for calm < 2 {
		backlog, _, err := r.tr.Store.OutboxBacklog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var open int64
		if err := r.tr.Store.DB.Raw(`SELECT count(*) FROM deliveries WHERE status NOT IN ('SENT', 'FAILED')`).Scan(&open).Error; err != nil {
			t.Fatal(err)
		}
		tasks := 0
		queues, err := r.w.Inspect.Queues()
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range queues {
			qi, err := r.w.Inspect.GetQueueInfo(q)
			if err != nil {
				t.Fatal(err)
			}
			tasks += qi.Pending + qi.Active + qi.Retry
		}
		if backlog == 0 && open == 0 && tasks == 0 {
			calm++
		} else {
			calm = 0
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run never settled: %d outbox rows, %d open deliveries, %d tasks", backlog, open, tasks)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ------------------------------------------------------------ observers ----

// observers are B's users (strict: A is another tenant) and A's reseller
// and customers (who must not see their siblings), each with its own
// scope's IDs and the foreign ones it is thrown.
func (r *canaryRun) observers() []*observer {
	a, b := r.a, r.b
	aAll := []string{a.prefix}
	// A's views as another tenant (or a sibling) may hold them: an active
	// link's token tells its holder whose link it is by design, so the
	// foreign views carry the revoked one.
	sibling := func(partner, customer testkit.Party) scopeIDs {
		v := a.view(partner, customer)
		v.LinkToken = a.revokedLinkToken
		return v
	}
	foreignA := []scopeIDs{sibling(a.dist, a.c1), sibling(a.r1, a.c3), sibling(a.r2, a.c2)}
	foreignA[1].Bill = a.distBill
	foreignA[2].Voucher = a.cancelledVoucher
	return []*observer{
		{name: "B's distributor admin", party: b.dist, strict: true, forbidden: aAll, own: b.view(b.dist, b.c3), foreign: foreignA},
		{name: "B's distributor viewer", party: b.viewer, strict: true, forbidden: aAll, own: b.view(b.dist, b.c3), foreign: foreignA},
		{name: "B's second-level reseller admin", party: b.r1, strict: true, forbidden: aAll, own: b.view(b.r1, b.c1), foreign: foreignA},
		{name: "B's customer admin", party: b.c1, strict: true, forbidden: aAll, own: b.view(b.c1, b.c1), foreign: foreignA},
		{name: "B's personal account admin", party: b.applicant, strict: true, forbidden: aAll, own: b.view(b.applicant, b.applicant), foreign: foreignA[:1]},
		{name: "A's reseller r1 admin", party: a.r1, forbidden: append(a.markersExcept("dist", "r1", "r2", "c1", "c1b", "mig", "unit", "rule"), b.prefix),
			own: a.view(a.r1, a.c1), foreign: []scopeIDs{sibling(a.r2, a.c2), sibling(a.dist, a.c3)}},
		{name: "A's customer c1 admin", party: a.c1, forbidden: append(a.markersExcept("dist", "r1", "c1", "unit"), b.prefix),
			own: a.view(a.c1, a.c1), foreign: []scopeIDs{sibling(a.r2, a.c2), sibling(a.r1, a.c1b), sibling(a.dist, a.c3)}},
		{name: "A's customer c3 admin", party: a.c3, forbidden: append(a.markersExcept("dist", "c3", "grp", "vch", "ban"), b.prefix),
			own: a.view(a.c3, a.c3), foreign: []scopeIDs{sibling(a.dist, a.c3b), sibling(a.r1, a.c1)}},
	}
}

// named is the observer called name.
func named(observers []*observer, name string) *observer {
	for _, o := range observers {
		if o.name == name {
			return o
		}
	}
	panic("no observer " + name)
}

// ------------------------------------------------------------- queries ----

// normalize replaces the strings of args (the IDs) in an answer by <ID>,
// so a foreign and an unknown ID's answers compare equal when they say the
// same.
func normalize(body []byte, args map[string]any) string {
	s := string(body)
	var idsIn func(v any) []string
	idsIn = func(v any) []string {
		switch x := v.(type) {
		case string:
			return []string{x}
		case []string:
			return x
		case []any:
			var out []string
			for _, e := range x {
				out = append(out, idsIn(e)...)
			}
			return out
		case map[string]any:
			var out []string
			for _, e := range x {
				out = append(out, idsIn(e)...)
			}
			return out
		}
		return nil
	}
	for _, id := range idsIn(args) {
		if len(id) > 4 {
			s = strings.ReplaceAll(s, id, "<ID>")
		}
	}
	return s
}

// ask calls a root query field with the deep selection and, when an error
// deep in the answer wiped part of it, again with the safe one: the
// answers, the deep one first.
func (r *canaryRun) ask(token, field string, args map[string]any) ([]httpAnswer, *testkit.Response) {
	h, resp := r.gql(token, r.rootQuery("query", field, args, queryDepth, false), args)
	out := []httpAnswer{h}
	for _, e := range resp.Errors {
		if len(e.Path) > 1 {
			sh, _ := r.gql(token, r.rootQuery("query", field, args, queryDepth, true), args)
			return append(out, sh), resp
		}
	}
	return out, resp
}

// runQueries calls every row of the table as every observer: in its own
// scope (B's answers must hold data), then with each foreign view, each
// answer compared with the same call naming unknown IDs.
func (r *canaryRun) runQueries(observers []*observer) {
	t := r.t
	for _, o := range observers {
		for _, row := range queryTable {
			seen := map[string]bool{}
			for _, args := range row.args(o.own, r) {
				hs, resp := r.ask(o.party.Token, row.field, args)
				key, _ := json.Marshal(args)
				seen[string(key)] = true
				r.exercised["Query."+row.field] = true
				for _, h := range hs {
					r.scan(o, fmt.Sprintf("Query.%s%s (own scope)", row.field, key), h.bytes())
				}
				if o.strict && len(resp.Errors) == 0 && string(resp.Data) != "null" {
					r.reached["Query."+row.field] = true
				}
			}
			for _, fv := range o.foreign {
				fargs, uargs := row.args(fv, r), row.args(fv.unknown(), r)
				if len(fargs) != len(uargs) {
					t.Fatalf("Query.%s: %d foreign and %d unknown argument sets", row.field, len(fargs), len(uargs))
				}
				for i, args := range fargs {
					key, _ := json.Marshal(args)
					if seen[string(key)] {
						continue
					}
					seen[string(key)] = true
					hs, resp := r.ask(o.party.Token, row.field, args)
					for _, h := range hs {
						r.scan(o, fmt.Sprintf("Query.%s%s", row.field, key), h.bytes())
					}
					if !o.strict {
						continue
					}
					h := hs[0]
					uh, uresp := r.gql(o.party.Token, r.rootQuery("query", row.field, uargs[i], queryDepth, false), uargs[i])
					if resp.Code() != uresp.Code() || normalize(resp.Data, args) != normalize(uresp.Data, uargs[i]) {
						t.Errorf("EXISTENCE to %s: Query.%s%s answers %s %s, an unknown ID %s %s", o.name, row.field, key,
							resp.Code(), clip(h.body), uresp.Code(), clip(uh.body))
					} else if len(resp.Errors) > 0 && len(uresp.Errors) > 0 && normalize([]byte(resp.Errors[0].Message), args) != normalize([]byte(uresp.Errors[0].Message), uargs[i]) {
						t.Errorf("EXISTENCE to %s: Query.%s%s says %q, for an unknown ID %q", o.name, row.field, key,
							resp.Errors[0].Message, uresp.Errors[0].Message)
					}
				}
			}
		}
	}
}

// clip shortens an answer for a failure message.
func clip(b []byte) string {
	if len(b) > 400 {
		return string(b[:400]) + "…"
	}
	return string(b)
}

// checkPositive runs the table as A's distributor admin in its own scope:
// every data-bearing field shows it the canary, so B's clean answers mean
// something.
func (r *canaryRun) checkPositive() {
	a := r.a
	for _, row := range queryTable {
		key := "Query." + row.field
	views:
		for _, v := range []scopeIDs{a.view(a.dist, a.c3), a.view(a.r1, a.c1)} {
			for _, args := range row.args(v, r) {
				hs, _ := r.ask(a.dist.Token, row.field, args)
				for _, h := range hs {
					r.positive[key] = r.positive[key] || bytes.Contains(bytes.ToLower(h.body), []byte(a.prefix))
				}
				if r.positive[key] {
					break views
				}
			}
		}
		if !row.dataFree && !r.positive[key] {
			r.t.Errorf("A's own admin never saw the canary through %s: the test proves nothing about it", key)
		}
	}
}

// ------------------------------------------------------- subscriptions ----

// watch is a WebSocket connection whose every message is kept.
type watch struct {
	name string
	o    string // the observer's name, or "" for A's admin (positive)
	c    *wsClient
	mu   sync.Mutex
	msgs [][]byte
	subs map[string]string // subscription id → root field
}

// messages are the messages received so far, in order.
func (w *watch) messages() [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([][]byte(nil), w.msgs...)
}

// openWatch connects as p and keeps every message.
func (r *canaryRun) openWatch(name string, p testkit.Party) *watch {
	c, err := dialWS(r.t, r.api, p.Token)
	if err != nil {
		r.t.Fatalf("%s: connection_init: %v", name, err)
	}
	w := &watch{name: name, c: c, subs: map[string]string{}}
	go func() {
		for {
			_, b, err := c.conn.Read(context.Background())
			if err != nil {
				return
			}
			w.mu.Lock()
			w.msgs = append(w.msgs, b)
			w.mu.Unlock()
		}
	}()
	return w
}

// subscribe starts subscription field with args and waits until the hub
// holds it on topic (or, for topic "", until the server answered it, an
// error expected).
func (r *canaryRun) subscribe(w *watch, id, field string, args map[string]any, topic string) {
	t := r.t
	w.subs[id] = field
	r.exercised["Subscription."+field] = true
	before := r.api.Hub.Subscribers(topic)
	w.c.send(map[string]any{"id": id, "type": "subscribe", "payload": map[string]any{"query": r.rootQuery("subscription", field, args, 1, false), "variables": args}})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if topic != "" && r.api.Hub.Subscribers(topic) > before {
			return
		}
		if topic == "" {
			for _, m := range w.messages() {
				if bytes.Contains(m, []byte(`"id":"`+id+`"`)) {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: subscription %s (%s %v) never registered", w.name, id, field, args)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// watches are the live connections of the run.
type watches struct {
	bDist, bCustomer, aCustomer, aDist *watch
}

// openWatches subscribes B's distributor admin and customer admin and A's
// customer c1 to their own account, inbox and (B's distributor) migration,
// and to foreign ones (answered NOT_FOUND); A's admin to its own, for the
// positive.
func (r *canaryRun) openWatches() *watches {
	a, b := r.a, r.b
	topic := func(p testkit.Party) string { return accounts.AccountTopic(p.Account.ID) }
	migTopic := func(id string) string {
		k, err := ids.Decode(id, "Migration")
		if err != nil {
			r.t.Fatal(err)
		}
		return notify.MigrationTopic(k)
	}
	ws := &watches{
		bDist:     r.openWatch("B's distributor admin", b.dist),
		bCustomer: r.openWatch("B's customer admin", b.c1),
		aCustomer: r.openWatch("A's customer c1 admin", a.c1),
		aDist:     r.openWatch("A's distributor admin", a.dist),
	}
	ws.bDist.o, ws.bCustomer.o, ws.aCustomer.o = "B's distributor admin", "B's customer admin", "A's customer c1 admin"
	r.subscribe(ws.bDist, "inbox", "inboxMessageReceived", nil, notify.InboxUserTopic(b.dist.User.ID))
	r.subscribe(ws.bDist, "own", "accountUpdated", vars{"id": gid(b.dist)}, topic(b.dist))
	r.subscribe(ws.bDist, "mig", "migrationUpdated", vars{"id": b.migration}, migTopic(b.migration))
	r.subscribe(ws.bDist, "foreign-account", "accountUpdated", vars{"id": gid(a.dist)}, "")
	r.subscribe(ws.bDist, "foreign-customer", "accountUpdated", vars{"id": gid(a.c1)}, "")
	r.subscribe(ws.bDist, "foreign-mig", "migrationUpdated", vars{"id": a.migration}, "")
	r.subscribe(ws.bCustomer, "inbox", "inboxMessageReceived", nil, notify.InboxUserTopic(b.c1.User.ID))
	r.subscribe(ws.bCustomer, "own", "accountUpdated", vars{"id": gid(b.c1)}, topic(b.c1))
	r.subscribe(ws.bCustomer, "foreign-account", "accountUpdated", vars{"id": gid(a.c1)}, "")
	r.subscribe(ws.aCustomer, "inbox", "inboxMessageReceived", nil, notify.InboxUserTopic(a.c1.User.ID))
	r.subscribe(ws.aCustomer, "own", "accountUpdated", vars{"id": gid(a.c1)}, topic(a.c1))
	r.subscribe(ws.aCustomer, "sibling", "accountUpdated", vars{"id": gid(a.c1b)}, "")
	r.subscribe(ws.aCustomer, "sibling-mig", "migrationUpdated", vars{"id": a.migration}, "")
	r.subscribe(ws.aDist, "inbox", "inboxMessageReceived", nil, notify.InboxUserTopic(a.dist.User.ID))
	r.subscribe(ws.aDist, "own", "accountUpdated", vars{"id": gid(a.dist)}, topic(a.dist))
	r.subscribe(ws.aDist, "mig", "migrationUpdated", vars{"id": a.migration}, migTopic(a.migration))
	return ws
}

// finalMarks renames the watched accounts and sends their admins a last
// message (a credit allocation naming them), then waits until each watch
// got both: everything published before has been read by then.
func (r *canaryRun) finalMarks(ws *watches) {
	plat := r.tr.Platform
	rename := func(tn *tenant, p testkit.Party, who string) {
		r.must(plat, `mutation($id: ID!, $n: String!) { updateAccount(id: $id, input: {name: $n}) { id } }`,
			vars{"id": gid(p), "n": tn.marker(who) + " " + finalMark}, nil)
	}
	allocate := func(by, child testkit.Party) {
		r.must(by, `mutation($a: ID!) { allocateCredit(childId: $a, amount: "1") { id } }`, vars{"a": gid(child)}, nil)
	}
	for _, c := range []struct {
		tn        *tenant
		watched   testkit.Party
		who       string
		by, child testkit.Party
		childWho  string
	}{
		{r.b, r.b.dist, "dist", r.b.dist, r.b.c3, "c3"},
		{r.b, r.b.c1, "c1", r.b.r1, r.b.c1, "c1"},
		{r.a, r.a.c1, "c1", r.a.r1, r.a.c1, "c1"},
		{r.a, r.a.dist, "dist", r.a.dist, r.a.c3, "c3"},
	} {
		rename(c.tn, c.watched, c.who)
		if c.childWho != c.who {
			rename(c.tn, c.child, c.childWho)
		}
		allocate(c.by, c.child)
	}
	wait := func(w *watch, want func([][]byte) bool) {
		deadline := time.Now().Add(30 * time.Second)
		for !want(w.messages()) {
			if time.Now().After(deadline) {
				var all []string
				for _, m := range w.messages() {
					all = append(all, clip(m))
				}
				r.t.Fatalf("%s never got its final events; it has:\n%s", w.name, strings.Join(all, "\n"))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	got := func(sub string, also ...string) func([][]byte) bool {
		return func(msgs [][]byte) bool {
			for _, m := range msgs {
				if bytes.Contains(m, []byte(`"id":"`+sub+`"`)) && bytes.Contains(m, []byte(finalMark)) {
					ok := true
					for _, s := range also {
						ok = ok && bytes.Contains(m, []byte(s))
					}
					if ok {
						return true
					}
				}
			}
			return false
		}
	}
	for _, w := range []*watch{ws.bDist, ws.bCustomer, ws.aCustomer, ws.aDist} {
		wait(w, got("own"))
		wait(w, got("inbox", "credit.allocated"))
	}
	wait(ws.bDist, func(msgs [][]byte) bool {
		for _, m := range msgs {
			if bytes.Contains(m, []byte(`"id":"mig"`)) && bytes.Contains(m, []byte("REJECTED")) {
				return true
			}
		}
		return false
	})
	r.quiesce()
}

// checkWatches: foreign subscriptions were refused NOT_FOUND, no watch of
// an observer got a forbidden marker, and A's admin got the canary live.
func (r *canaryRun) checkWatches(ws *watches, observers []*observer) {
	for _, w := range []*watch{ws.bDist, ws.bCustomer, ws.aCustomer} {
		o := named(observers, w.o)
		for _, m := range w.messages() {
			r.scan(o, "a subscription event", m)
		}
		for id := range w.subs {
			if !strings.HasPrefix(id, "foreign") && !strings.HasPrefix(id, "sibling") {
				continue
			}
			refused := false
			for _, m := range w.messages() {
				if bytes.Contains(m, []byte(`"id":"`+id+`"`)) {
					refused = refused || (bytes.Contains(m, []byte(`"type":"error"`)) || bytes.Contains(m, []byte(`"errors"`))) &&
						bytes.Contains(m, []byte("NOT_FOUND"))
					if bytes.Contains(m, []byte(`"data":{`)) {
						r.t.Errorf("%s: subscription %s delivered data: %s", w.name, id, clip(m))
					}
				}
			}
			if !refused {
				r.t.Errorf("%s: subscription %s was not refused NOT_FOUND", w.name, id)
			}
		}
	}
	var live int
	for _, m := range ws.aDist.messages() {
		if bytes.Contains(m, []byte(`"type":"next"`)) && bytes.Contains(bytes.ToLower(m), []byte(r.a.prefix)) {
			live++
		}
	}
	if live < 3 {
		r.t.Errorf("A's own admin got %d live events with the canary: the watches prove nothing", live)
	}
}

// ------------------------------------------------------------- exports ----

// restCall is one request of the REST surface, from a view.
type restCall struct {
	route        string // the route pattern, for coverage
	method, path string
	body         []byte
	ctype        string
}

// restCalls are the REST requests naming v's objects.
func (r *canaryRun) restCalls(v scopeIDs) []restCall {
	q := url.QueryEscape
	month, from, to := r.prev.String(), r.prev.String(), r.cur.String()
	get := func(route, path string) restCall {
		return restCall{route: "GET " + route, method: http.MethodGet, path: path}
	}
	var out []restCall
	add := func(c restCall, needs ...string) {
		for _, n := range needs {
			if n == "" {
				return
			}
		}
		out = append(out, c)
	}
	const exp = "/v1/expenditures/export"
	add(get(exp, exp+"?partnerId="+q(v.Partner)+"&from="+from+"&to="+to), v.Partner)
	add(get(exp, exp+"?customerId="+q(v.Customer)+"&from="+from+"&to="+to), v.Customer)
	for _, g := range []string{"CUSTOMER", "PRODUCT", "DAY", "MONTH"} {
		add(get(exp, exp+"?kind=summary&groupBy="+g+"&partnerId="+q(v.Partner)+"&from="+from+"&to="+to), v.Partner)
	}
	add(get(exp, exp+"?kind=summary&groupBy=PRODUCT&customerId="+q(v.Customer)), v.Customer)
	add(get("/v1/partner-bills/{id}/lines.csv", "/v1/partner-bills/"+v.Bill+"/lines.csv"), v.Bill)
	const cbe = "/v1/customer-bills/export"
	add(get(cbe, cbe+"?partnerId="+q(v.Partner)+"&month="+month), v.Partner)
	add(get(cbe, cbe+"?customerId="+q(v.Customer)), v.Customer)
	for _, f := range []string{"invoice.html", "invoice.pdf", "invoice.html?locale=zh-CN"} {
		add(get("/v1/customer-bills/{id}/{file}", "/v1/customer-bills/"+v.CustomerBill+"/"+f), v.CustomerBill)
	}
	add(get("/v1/margins/export", "/v1/margins/export?partnerId="+q(v.Partner)+"&month="+month), v.Partner)
	add(get("/v1/vouchers/export", "/v1/vouchers/export?partnerId="+q(v.Partner)), v.Partner)
	add(get("/v1/vouchers/export", "/v1/vouchers/export?customerId="+q(v.Customer)+"&status=ISSUED"), v.Customer)
	body, _ := json.Marshal(vars{"customerId": v.Customer, "billingMode": "SUBSCRIPTION", "listAmount": "1.00"})
	add(restCall{route: "POST /v1/purchase-authorizations", method: http.MethodPost, path: "/v1/purchase-authorizations", body: body, ctype: "application/json"}, v.Customer)
	gqlGet := "/graphql?query=" + q(`query($id: ID!) { account(id: $id) { name email tags { key value } } }`) + "&variables=" + q(`{"id":"`+v.Customer+`"}`)
	add(get("/graphql", gqlGet), v.Customer)
	return out
}

// ownRoutes are the REST requests that name nothing (answered from the
// caller's own scope), with the monitoring dashboard a non-platform user
// must be refused.
func (r *canaryRun) ownRoutes(token string) []restCall {
	get := func(route, path string) restCall {
		return restCall{route: "GET " + route, method: http.MethodGet, path: path}
	}
	const exp = "/v1/expenditures/export"
	ndjson := []byte(`{"externalId":"probe-1","customerId":"` + gid(r.a.c1) + `","productCode":"probe","billingMode":"PAY_PER_USE","usageAt":"` +
		time.Now().UTC().Format(time.RFC3339) + `","listAmount":"1","actualAmount":"1"}` + "\n")
	return []restCall{
		get(exp, exp), get(exp, exp+"?kind=summary&groupBy=CUSTOMER"), get(exp, exp+"?kind=summary&groupBy=PRODUCT&from="+r.prev.String()+"&to="+r.cur.String()),
		get("/v1/customer-bills/export", "/v1/customer-bills/export"), get("/v1/margins/export", "/v1/margins/export?month="+r.prev.String()),
		get("/v1/migrations/template.csv", "/v1/migrations/template.csv"), get("/healthz", "/healthz"), get("/readyz", "/readyz"),
		get("/metrics", "/metrics"), get("/monitoring/", "/monitoring/"), get("/monitoring/", "/monitoring/?token="+url.QueryEscape(token)),
		{route: "POST /v1/expenditures", method: http.MethodPost, path: "/v1/expenditures", body: ndjson, ctype: "application/x-ndjson"},
	}
}

// runExports sends every REST request as every observer: its own scope's,
// then the foreign ones, each compared with the same request naming
// unknown IDs; and checks A's admin gets the canary from its own exports.
func (r *canaryRun) runExports(observers []*observer) {
	t := r.t
	for _, o := range observers {
		for _, c := range append(r.ownRoutes(o.party.Token), r.restCalls(o.own)...) {
			h := r.send(c.method, c.path, o.party.Token, c.ctype, c.body)
			r.exercised[c.route] = true
			r.scan(o, c.method+" "+c.path+" (own scope)", h.bytes())
		}
		for _, fv := range o.foreign {
			fc, uc := r.restCalls(fv), r.restCalls(fv.unknown())
			for i, c := range fc {
				h := r.send(c.method, c.path, o.party.Token, c.ctype, c.body)
				r.scan(o, c.method+" "+c.path, h.bytes())
				if !o.strict {
					continue
				}
				u := r.send(uc[i].method, uc[i].path, o.party.Token, uc[i].ctype, uc[i].body)
				if h.status != u.status {
					t.Errorf("EXISTENCE to %s: %s %s answers %d %s, an unknown ID %d %s", o.name, c.method, c.path, h.status, clip(h.body), u.status, clip(u.body))
				}
			}
		}
	}
	// Positive: A's admin downloads its own data with the canary in it.
	a := r.a
	seen := 0
	for _, c := range r.restCalls(a.view(a.r1, a.c1)) {
		h := r.send(c.method, c.path, a.dist.Token, c.ctype, c.body)
		if bytes.Contains(bytes.ToLower(h.bytes()), []byte(a.prefix)) {
			seen++
		}
	}
	if seen < 8 {
		t.Errorf("A's admin saw the canary in only %d of its own downloads", seen)
	}
}

// ----------------------------------------------------------- mutations ----

// runMutations calls every Mutation field that takes an ID (the scope
// walker's way: introspection, sample values) with A's real objects, as
// B's distributor admin and customer admin: each answers NOT_FOUND and
// none shows the canary.
func (r *canaryRun) runMutations(observers []*observer) {
	t := r.t
	var schema struct {
		Schema struct {
			Types []*typeDef `json:"types"`
		} `json:"__schema"`
	}
	r.must(r.tr.Platform, introspection, nil, &schema)
	w := &walker{types: map[string]*typeDef{}}
	for _, td := range schema.Schema.Types {
		w.types[td.Name] = td
	}
	a := r.a
	foreign := idSet{"Account": gid(a.c1), "User": a.userID, "ApiToken": a.extraTokenID, "InboxMessage": a.inboxMessage,
		"Delivery": a.delivery, "CustomerGroup": a.group, "SharingUnit": a.unit, "Invitation": a.invitation, "Unbinding": a.unbinding,
		"Migration": a.migration, "PartnerBill": a.r1Bill, "Incentive": a.incentive, "VoucherTemplate": a.template,
		"VoucherIssuance": a.issuance, "Voucher": a.voucher, "ApplicationLink": a.link, "LinkApplication": a.application,
		"WebhookEndpoint": a.webhook}
	partners := idSet{}
	for k, v := range foreign {
		partners[k] = v
	}
	partners["Account"] = gid(a.r1)
	n := 0
	for _, o := range observers {
		if !o.strict || o.party.User.ID == r.b.viewer.User.ID || o.party.User.ID == r.b.r1.User.ID {
			continue
		}
		for _, f := range w.types["Mutation"].Fields {
			for _, ids := range []idSet{foreign, partners} {
				calls, err := w.calls("Mutation", f, ids)
				if err != nil {
					t.Errorf("Mutation.%s: %v", f.Name, err)
					continue
				}
				for _, c := range calls {
					n++
					h, resp := r.gql(o.party.Token, c.query, c.vars)
					r.exercised["Mutation."+c.field] = true
					r.scan(o, "Mutation."+c.field+" with A's IDs", h.bytes())
					if perItem[c.field] {
						continue
					}
					if resp.Code() != "NOT_FOUND" {
						t.Errorf("%s: Mutation.%s with A's IDs %v: want NOT_FOUND, got %q %s", o.name, c.field, c.vars, resp.Code(), clip(h.body))
					}
				}
			}
		}
	}
	t.Logf("%d mutation calls with A's IDs", n)
}

// -------------------------------------------------------------- probes ----

// runProbes sends what an adversary of B would try beyond plain IDs:
// malformed and retyped IDs, A's strings as input (the answer may echo what
// B sent, never more of A), A's tokens where they do not belong, and a
// migration naming A's partner as its source.
func (r *canaryRun) runProbes(observers []*observer) {
	t := r.t
	a, b := r.a, r.b
	bAdmin := named(observers, "B's distributor admin")
	echo := func(name string, sent string, p testkit.Party, query string, vs map[string]any) {
		t.Helper()
		h, _ := r.gql(p.Token, query, vs)
		var forbidden []string
		for _, w := range whoCodes {
			if !strings.Contains(sent, a.marker(w)) {
				forbidden = append(forbidden, a.marker(w))
			}
		}
		o := &observer{name: bAdmin.name + " (" + name + ")", forbidden: forbidden}
		r.scan(o, name, h.bytes())
	}
	key := func(id string) int64 {
		_, k, err := ids.Parse(id)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	// Malformed and retyped IDs.
	for _, id := range []string{"not-an-id!", gid(a.c1) + "x", ids.Encode("Voucher", a.c1.Account.ID), ids.Encode("Account", key(a.voucher)),
		ids.Encode("Migration", a.c1.Account.ID), ids.Encode("Account", -1)[:4], strings.Repeat("A", 200)} {
		for _, q := range []string{`query($id: ID!) { node(id: $id) { id } account(id: $id) { name } }`,
			`query($id: ID!) { vouchers(customerId: $id) { totalCount } }`, `mutation($id: ID!) { freezeAccount(accountId: $id, mode: ACCOUNT) { name } }`} {
			h, _ := r.gql(b.dist.Token, q, vars{"id": id})
			r.scan(bAdmin, "a malformed or retyped ID "+id, h.bytes())
		}
	}
	for _, body := range []string{`{"query": "{ me { name } ", "variables": {}}`, `{"query": 12}`, `not json`,
		`{"query": "query($id: ID!) { account(id: $id) { name } }", "variables": {"id": 123}}`,
		`{"query": "{ account(id: \"` + gid(a.c1) + `\") { name nope } }"}`} {
		h := r.send(http.MethodPost, "/graphql", b.dist.Token, "application/json", []byte(body))
		r.scan(bAdmin, "a malformed request "+body, h.bytes())
	}
	// A's strings as B's input.
	echo("inviting A's customer's user", a.c1.User.Email, b.dist, `mutation($e: String!) { inviteCustomer(email: $e) { id email partner { name } } }`, vars{"e": a.c1.User.Email})
	echo("inviting A's invitee", a.invitee.User.Email, b.dist, `mutation($e: String!) { inviteCustomer(email: $e) { id email partner { name } } }`, vars{"e": a.invitee.User.Email})
	echo("a user with A's email", a.dist.User.Email, b.dist, `mutation($a: ID!, $e: String!) { createUser(accountId: $a, email: $e, roles: [VIEWER]) }`,
		vars{"a": gid(b.dist), "e": a.dist.User.Email})
	echo("filtering by A's tag", a.marker("c1"), b.dist, `query($t: TagInput) { expenditureSummary(groupBy: CUSTOMER, tag: $t) { rows { customer { name } } records } }`,
		vars{"t": vars{"key": a.marker("c1") + "cost-center", "value": a.marker("c1") + "value"}})
	echo("filtering by A's product", a.marker("c1"), b.dist, `query($p: String) { expenditures(filter: {productCode: $p}) { totalCount edges { node { externalId } } } }`,
		vars{"p": a.marker("c1") + "ecs"})
	echo("searching children for A's name", a.marker("dist"), b.dist, `query($s: String) { me { children(search: $s) { totalCount edges { node { name } } } } }`,
		vars{"s": a.prefix})
	// A's tokens where they do not belong.
	for _, c := range []struct{ name, q, tok string }{
		{"accepting A's invitation token", `mutation($t: String!) { acceptInvitation(token: $t) { id name } }`, ""},
		{"declining A's invitation token", `mutation($t: String!) { declineInvitation(token: $t) }`, ""},
		{"applying with A's revoked link", `mutation($t: String!) { applyWithLink(token: $t) { id partner { name } } }`, a.revokedLinkToken},
		{"previewing A's revoked link", `query($t: String!) { applicationLinkPreview(token: $t) { partnerName } }`, a.revokedLinkToken},
	} {
		tok := c.tok
		if tok == "" {
			for s, what := range r.secrets {
				if what == "invitation token of A" {
					tok = s
				}
			}
		}
		h, _ := r.gql(b.c1.Token, c.q, vars{"t": tok})
		r.scan(named(observers, "B's customer admin"), c.name, h.bytes())
	}
	// A's API token used as a bearer on B's behalf is A's own access, not a
	// leak; a revoked or mangled one must say nothing of A.
	for _, tok := range []string{a.extraToken + "x", "pd_" + strings.Repeat("0", 40)} {
		h := r.send(http.MethodPost, "/graphql", tok, "application/json", []byte(`{"query":"{ me { name } }"}`))
		r.scan(bAdmin, "a mangled bearer token", h.bytes())
		r.secret("a mangled token", tok)
	}
	// A migration B's distributor creates naming A's partners as its
	// source, with A's customers as rows: the draft is B's own, so it
	// must not show B any of A.
	for _, c := range []struct {
		source, customer testkit.Party
	}{{a.r1, a.c1b}, {a.dist, a.c3}} {
		what := "createMigration naming A's partner " + c.source.Account.Name[len(a.prefix):] + " as source and its customer as a row"
		r.exercised["Mutation.createMigration"] = true
		for _, safe := range []bool{false, true} {
			q := `mutation($s: ID!, $rows: [MigrationRowInput!]) { createMigration(sourceId: $s, rows: $rows) ` + r.selection("Migration", queryDepth, safe) + ` }`
			h, resp := r.gql(b.dist.Token, q, vars{"s": gid(c.source), "rows": []any{vars{"accountId": gid(c.customer), "creditToAllocate": "1"}}})
			r.scan(bAdmin, what, h.bytes())
			var m struct{ CreateMigration *struct{ ID string } }
			_ = json.Unmarshal(resp.Data, &m)
			if m.CreateMigration != nil {
				_, _ = r.gql(b.dist.Token, `mutation($id: ID!) { cancelMigration(id: $id) { id } }`, vars{"id": m.CreateMigration.ID})
			}
		}
	}
}

// -------------------------------------------------------- notifications ----

// owner tells who an email address or phone number belongs to: a tenant's
// code ("A:c1"), "platform", or "other".
func (r *canaryRun) owner(addr string) string {
	low := strings.ToLower(addr)
	for _, tn := range []*tenant{r.a, r.b} {
		for _, w := range whoCodes {
			if strings.Contains(low, tn.marker(w)) {
				return tn.name + ":" + w
			}
		}
	}
	if strings.HasSuffix(low, "@platform.test") {
		return "platform"
	}
	return "other"
}

// phoneOwner tells whose phone a number is, by the tenants' number ranges.
func (r *canaryRun) phoneOwner(phone string) string {
	n, err := strconv.ParseInt(strings.TrimPrefix(phone, "+"), 10, 64)
	if err != nil {
		return "other"
	}
	for _, tn := range []*tenant{r.a, r.b} {
		if n > tn.phoneBase && n <= tn.phoneBase+tn.phones {
			return tn.name
		}
	}
	return "other"
}

// checkNotifications: no email, SMS or webhook request reaching B (or any
// other tenant) holds the canary, none reaching A's customers holds a
// sibling's marker, and A's own got the canary (positive).
func (r *canaryRun) checkNotifications(observers []*observer) {
	t := r.t
	a := r.a
	strictB := named(observers, "B's distributor admin")
	siblingOf := map[string]*observer{"c1": named(observers, "A's customer c1 admin"), "c3": named(observers, "A's customer c3 admin"),
		"r1": named(observers, "A's reseller r1 admin")}
	other := &observer{name: "another tenant", forbidden: []string{a.prefix, r.b.prefix}}
	toA, toB, users := 0, 0, 0
	for _, m := range r.w.SMTP.Messages() {
		if m.Username != "relay-user" {
			users++
		}
		blob := append(append(append([]byte(m.Subject+"\n"), m.Data...), m.TextBody...), m.HTMLBody...)
		for _, to := range m.To {
			who := r.owner(to)
			switch {
			case who == "platform":
			case strings.HasPrefix(who, "B:"):
				toB++
				r.scan(strictB, "an email to "+to, blob)
			case strings.HasPrefix(who, "A:"):
				toA++
				if o := siblingOf[strings.TrimPrefix(who, "A:")]; o != nil {
					r.scan(o, "an email to "+to, blob)
				}
			default:
				r.scan(other, "an email to "+to, blob)
			}
		}
	}
	if users > 0 {
		t.Errorf("%d emails were sent without the configured SMTP AUTH user", users)
	}
	smsA, smsB := 0, 0
	for _, p := range r.w.SMS.Posts() {
		blob := []byte(p.To + "\n" + p.Text)
		switch r.phoneOwner(p.To) {
		case "A":
			smsA++
			if bytes.Contains(bytes.ToLower(blob), []byte(a.prefix)) {
				r.positive["SMS"] = true
			}
		case "B":
			smsB++
			r.scan(strictB, "an SMS to "+p.To, blob)
		default:
			r.scan(other, "an SMS to "+p.To, blob)
		}
	}
	for _, req := range r.b.hook.requests() {
		r.scan(strictB, "a webhook request to B's endpoint", req)
	}
	hookA := 0
	for _, req := range r.a.hook.requests() {
		if bytes.Contains(bytes.ToLower(req), []byte(a.prefix)) {
			hookA++
		}
	}
	// B's inboxes, every user's, in full.
	for _, o := range observers {
		h, _ := r.gql(o.party.Token, `{ inbox(first: 500) { totalCount edges { node { eventType subject body } } } }`, nil)
		r.scan(o, "the inbox", h.bytes())
	}
	for _, p := range []testkit.Party{r.b.r2, r.b.c1b, r.b.c2, r.b.c3, r.b.c3b, r.b.invitee, r.b.applicant} {
		h, _ := r.gql(p.Token, `{ inbox(first: 500) { edges { node { subject body } } } }`, nil)
		r.scan(strictB, "the inbox of "+p.Account.Name, h.bytes())
	}
	for _, p := range []testkit.Party{r.tr.D1, r.tr.D2, r.tr.C1, r.tr.P1} {
		h, _ := r.gql(p.Token, `{ inbox(first: 500) { edges { node { subject body } } } }`, nil)
		r.scan(other, "the inbox of "+p.Account.Name, h.bytes())
	}
	t.Logf("emails: %d to A, %d to B; SMS: %d to A, %d to B; webhook requests: %d to A (%d with the canary), %d to B",
		toA, toB, smsA, smsB, len(r.a.hook.requests()), hookA, len(r.b.hook.requests()))
	if toA == 0 || toB == 0 || smsA == 0 || smsB == 0 || hookA == 0 || len(r.b.hook.requests()) == 0 || !r.positive["SMS"] {
		t.Errorf("the channels prove nothing: emails %d/%d, SMS %d/%d (canary to A: %v), webhooks %d/%d", toA, toB, smsA, smsB,
			r.positive["SMS"], hookA, len(r.b.hook.requests()))
	}
}

// ------------------------------------------------------------ coverage ----

// checkCoverage fails for every Query and Subscription field of the schema
// no observer exercised, and every Query field no observer of another
// tenant got data from.
func (r *canaryRun) checkCoverage() {
	var missing, unreached []string
	for _, def := range []*ast.Definition{r.schema.Query, r.schema.Subscription} {
		for _, f := range def.Fields {
			if strings.HasPrefix(f.Name, "__") {
				continue
			}
			key := def.Name + "." + f.Name
			if !r.exercised[key] {
				missing = append(missing, key)
			}
			if def == r.schema.Query && !r.reached[key] {
				unreached = append(unreached, key)
			}
		}
	}
	sort.Strings(missing)
	sort.Strings(unreached)
	if len(missing) > 0 {
		r.t.Errorf("the canary test does not exercise %v: add them to queryTable (or openWatches)", missing)
	}
	if len(unreached) > 0 {
		r.t.Errorf("no user of B got an answer without errors from %v: the canary test proves nothing about them", unreached)
	}
	var routes []string
	for k := range r.exercised {
		if !strings.HasPrefix(k, "Query.") && !strings.HasPrefix(k, "Subscription.") && !strings.HasPrefix(k, "Mutation.") {
			routes = append(routes, k)
		}
	}
	sort.Strings(routes)
	r.t.Logf("REST routes exercised: %s", strings.Join(routes, ", "))
}

// ------------------------------------------------------------ log scan ----

var bodyLineSplit = regexp.MustCompile(`\r?\n`)

// scanLogs reads the run's logs: no secret, no chunk of a rendered body.
func (r *canaryRun) scanLogs() {
	t := r.t
	logs := r.logs.String()
	if len(logs) < 1000 || !strings.Contains(logs, "level=DEBUG") {
		t.Fatalf("the run logged %d bytes, no debug line: the scan would prove nothing", len(logs))
	}
	forms := func(s string) []string {
		q := strconv.Quote(s)
		j, _ := json.Marshal(s)
		return []string{s, q[1 : len(q)-1], string(j[1 : len(j)-1])}
	}
	found := func(s string) bool {
		for _, f := range forms(s) {
			if strings.Contains(logs, f) {
				return true
			}
		}
		return false
	}
	for s, what := range r.secrets {
		if found(s) {
			t.Errorf("SECRET IN LOG: %s (%s…) is in the log: %s", what, s[:min(8, len(s))], logLine(logs, s))
		}
	}
	// Bodies: every line of at least 24 characters of every email's text
	// (not its subject, which is not a body), every SMS, every webhook
	// payload.
	chunks := map[string]string{}
	for _, m := range r.w.SMTP.Messages() {
		for _, l := range bodyLineSplit.Split(m.TextBody, -1) {
			l = strings.TrimSpace(l)
			if len(l) >= 24 && l != m.Subject {
				chunks[l] = "the email body to " + strings.Join(m.To, ",")
			}
		}
	}
	for _, p := range r.w.SMS.Posts() {
		chunks[p.Text] = "the SMS to " + p.To
	}
	for _, tn := range []*tenant{r.a, r.b} {
		for _, b := range tn.hook.payloads() {
			chunks[string(b)] = "a webhook payload to " + tn.name
		}
	}
	leaked := 0
	for c, what := range chunks {
		if found(c) {
			leaked++
			if leaked <= 10 {
				t.Errorf("BODY IN LOG: %s: %q is in the log: %s", what, clip([]byte(c)), logLine(logs, c))
			}
		}
	}
	if len(chunks) < 20 {
		t.Errorf("only %d body chunks to look for: the scan proves little", len(chunks))
	}
	canary := 0
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(strings.ToLower(l), r.a.prefix) {
			canary++
			if canary <= 5 {
				t.Logf("the canary in an operator's log line (reported, not a failure): %s", clip([]byte(l)))
			}
		}
	}
	t.Logf("log scan: %d bytes (%d warnings and errors), %d secrets and %d body chunks looked for, %d leaked; %d log lines hold the canary",
		len(logs), strings.Count(logs, "level=WARN")+strings.Count(logs, "level=ERROR"), len(r.secrets), len(chunks), leaked, canary)
}

// logLine is the log line holding s, clipped.
func logLine(logs, s string) string {
	i := strings.Index(logs, s)
	if i < 0 {
		return "(in an escaped form)"
	}
	from := strings.LastIndex(logs[:i], "\n") + 1
	to := strings.Index(logs[i:], "\n")
	if to < 0 {
		to = len(logs) - i
	}
	return clip([]byte(logs[from : i+to]))
}
