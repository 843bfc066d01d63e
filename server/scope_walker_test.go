package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"partnerd/ids"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/server"
	"partnerd/testkit"
)

// The walker reads the schema by introspection and calls every Query and
// Mutation field that takes an ID (directly, in a list or inside an input
// object) as one party with IDs from outside its scope. Each call must answer
// NOT_FOUND with no data and never mention the foreign objects. A field whose
// arguments the walker cannot build fails the test, so fields that later
// issues add are covered without editing it.

type typeRef struct {
	Kind   string   `json:"kind"`
	Name   *string  `json:"name"`
	OfType *typeRef `json:"ofType"`
}

func (t *typeRef) named() *typeRef {
	for t.OfType != nil {
		t = t.OfType
	}
	return t
}

func (t *typeRef) String() string {
	switch t.Kind {
	case "NON_NULL":
		return t.OfType.String() + "!"
	case "LIST":
		return "[" + t.OfType.String() + "]"
	}
	return *t.Name
}

type inputValue struct {
	Name string   `json:"name"`
	Type *typeRef `json:"type"`
}

type fieldDef struct {
	Name string       `json:"name"`
	Args []inputValue `json:"args"`
	Type *typeRef     `json:"type"`
}

type typeDef struct {
	Name        string       `json:"name"`
	Kind        string       `json:"kind"`
	Fields      []fieldDef   `json:"fields"`
	InputFields []inputValue `json:"inputFields"`
	EnumValues  []struct {
		Name string `json:"name"`
	} `json:"enumValues"`
}

const introspection = `{ __schema { types { name kind
  fields { name type { ...T } args { name type { ...T } } }
  inputFields { name type { ...T } }
  enumValues { name } } } }
fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }`

// idSet holds one ID per object type, all of one side (foreign or own).
type idSet map[string]string

// sample values for non-ID arguments, by argument name, chosen to be valid so
// that the only thing a call can trip over is the scope.
var sampleStrings = map[string]string{
	"email": "walker@example.com", "phone": "+8613800000099", "currency": "CNY", "name": "Walker",
	"locale": "en-US", "search": "a", "key": "k", "value": "v", "after": "",
}

var sampleEnums = map[string]string{"AccountKind": "CUSTOMER", "Role": "VIEWER"}

type walker struct {
	types map[string]*typeDef
}

// build returns a value for an argument of type t, or an error when the
// walker cannot build it. It reports whether the value holds an ID.
func (w *walker) build(name string, t *typeRef, idFor func(argName string) (string, bool)) (any, bool, error) {
	switch t.Kind {
	case "NON_NULL":
		return w.build(name, t.OfType, idFor)
	case "LIST":
		v, hasID, err := w.build(name, t.OfType, idFor)
		if err != nil {
			return nil, false, err
		}
		return []any{v}, hasID, nil
	case "SCALAR":
		switch *t.Name {
		case "ID":
			id, ok := idFor(name)
			if !ok {
				return nil, false, fmt.Errorf("no ID for argument %q", name)
			}
			return id, true, nil
		case "String":
			if s, ok := sampleStrings[name]; ok {
				return s, false, nil
			}
			return "walker", false, nil
		case "Int":
			return 1, false, nil
		case "Boolean":
			return false, false, nil
		case "Decimal":
			return "1.00", false, nil
		case "Month":
			return "2026-01", false, nil
		case "Time":
			return "2026-01-01T00:00:00Z", false, nil
		case "Upload":
			return nil, false, nil // the rows are given instead
		}
		return nil, false, fmt.Errorf("the walker cannot build scalar %s (argument %q)", *t.Name, name)
	case "ENUM":
		if v, ok := sampleEnums[*t.Name]; ok {
			return v, false, nil
		}
		def := w.types[*t.Name]
		return def.EnumValues[0].Name, false, nil
	case "INPUT_OBJECT":
		def := w.types[*t.Name]
		obj, hasID := map[string]any{}, false
		for _, f := range def.InputFields {
			v, h, err := w.build(f.Name, f.Type, idFor)
			if err != nil {
				return nil, false, fmt.Errorf("%s.%w", *t.Name, err)
			}
			obj[f.Name], hasID = v, hasID || h
		}
		return obj, hasID, nil
	}
	return nil, false, fmt.Errorf("the walker cannot build %s for argument %q", t.Kind, name)
}

// typeForArg guesses the object type an ID argument names; "" means any.
func typeForArg(field, arg string) string {
	switch {
	case strings.HasSuffix(arg, "userId"), arg == "userId":
		return "User"
	case field == "markRead":
		return "InboxMessage"
	case arg == "id" && strings.Contains(strings.ToLower(field), "delivery"):
		return "Delivery"
	case arg == "id" && strings.Contains(strings.ToLower(field), "token"):
		return "ApiToken"
	case arg == "id" && field == "node":
		return ""
	case arg == "id" && field == "revokeInvitation":
		return "Invitation"
	case arg == "id" && strings.Contains(strings.ToLower(field), "unbinding"):
		return "Unbinding"
	case arg == "id" && strings.Contains(strings.ToLower(field), "migration"):
		return "Migration"
	case arg == "id" && field == "issuePartnerBill":
		return "PartnerBill"
	case arg == "incentiveId":
		return "Incentive"
	case arg == "groupId", arg == "id" && field == "deleteCustomerGroup":
		return "CustomerGroup"
	case arg == "unitId", arg == "id" && field == "deleteSharingUnit":
		return "SharingUnit"
	case arg == "templateId", arg == "id" && strings.Contains(strings.ToLower(field), "vouchertemplate"):
		return "VoucherTemplate"
	case arg == "id" && strings.Contains(strings.ToLower(field), "voucherissuance"):
		return "VoucherIssuance"
	case arg == "voucherId", arg == "id" && field == "cancelVoucher":
		return "Voucher"
	case arg == "linkId", arg == "id" && field == "revokeApplicationLink":
		return "ApplicationLink"
	case arg == "id" && strings.HasSuffix(field, "LinkApplication"):
		return "LinkApplication"
	case arg == "endpointId", arg == "id" && strings.Contains(strings.ToLower(field), "webhook"):
		return "WebhookEndpoint"
	case strings.HasSuffix(arg, "Id"), strings.HasSuffix(arg, "Ids"), arg == "id":
		return "Account"
	}
	return ""
}

type call struct {
	op, field, query string
	vars             map[string]any
}

// crossTree are the fields whose ID arguments name accounts outside the
// caller's subtree by design: a migration's receiver names the source
// partner and the source's customers. They answer an ID it may not see like
// an unknown one ("not a customer of the source partner", row by row), which
// TestMigration_TierOneReceiver checks, instead of NOT_FOUND.
var crossTree = map[string]bool{"createMigration": true, "addMigrationRows": true}

// perItem are the batch mutations that answer each ID on its own (a list of
// results with a code) instead of failing the call: for a foreign ID the
// item's code must be NOT_FOUND and its account null.
var perItem = map[string]bool{"freezeAccounts": true, "unfreezeAccounts": true}

func (w *walker) calls(op string, f fieldDef, ids idSet) ([]call, error) {
	if crossTree[f.Name] {
		return nil, nil
	}
	var out []call
	kinds := []string{""}
	if typeForArg(f.Name, "id") == "" || f.Name == "node" {
		kinds = []string{"Account", "User", "ApiToken"}
	}
	for _, forced := range kinds {
		vars, defs, uses, hasID := map[string]any{}, []string{}, []string{}, false
		for _, a := range f.Args {
			v, h, err := w.build(a.Name, a.Type, func(arg string) (string, bool) {
				typ := typeForArg(f.Name, arg)
				if typ == "" {
					typ = forced
				}
				id, ok := ids[typ]
				return id, ok
			})
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %w", op, f.Name, err)
			}
			hasID = hasID || h
			vars[a.Name] = v
			defs = append(defs, fmt.Sprintf("$%s: %s", a.Name, a.Type))
			uses = append(uses, fmt.Sprintf("%s: $%s", a.Name, a.Name))
		}
		if !hasID {
			return nil, nil
		}
		sel := ""
		if k := f.Type.named().Kind; k == "OBJECT" || k == "INTERFACE" || k == "UNION" {
			sel = " { __typename }"
		}
		if perItem[f.Name] {
			sel = " { code account { id } }"
		}
		opWord := strings.ToLower(op)
		q := fmt.Sprintf("%s Walk(%s) { %s(%s)%s }", opWord, strings.Join(defs, ", "), f.Name, strings.Join(uses, ", "), sel)
		out = append(out, call{op: op, field: f.Name, query: q, vars: vars})
	}
	return out, nil
}

func TestScopeWalker_ForeignIDsAreNotFound(t *testing.T) {
	api := testkit.NewAPI(t, server.Options{})
	tr := api.Tree

	var schema struct {
		Schema struct {
			Types []*typeDef `json:"types"`
		} `json:"__schema"`
	}
	api.MustDo(t, tr.Platform.Token, introspection, nil, &schema)
	w := &walker{types: map[string]*typeDef{}}
	for _, td := range schema.Schema.Types {
		w.types[td.Name] = td
	}

	// Each case: who calls, the foreign side it must not reach, and canary
	// names that must never appear in its answers.
	cases := []struct {
		name    string
		caller  testkit.Party
		foreign testkit.Party
	}{
		{"distributor vs other distributor", tr.D1, tr.D2},
		{"distributor vs other distributor's customer", tr.D1, tr.C5},
		{"distributor vs single-tier reseller", tr.D1, tr.S1},
		{"distributor vs platform", tr.D1, tr.Platform},
		{"second-level reseller vs sibling", tr.R1, tr.R2},
		{"second-level reseller vs sibling's customer", tr.R1, tr.C2},
		{"second-level reseller vs its distributor", tr.R1, tr.D1},
		{"customer vs its partner", tr.C1, tr.R1},
		{"customer vs other customer", tr.C1, tr.C3},
		{"personal vs customer", tr.P1, tr.C4},
	}
	ctx := context.Background()
	exercised := map[string]bool{}
	for _, tc := range cases {
		foreign := foreignIDs(t, api, tc.foreign)
		own := ownIDs(t, api, tc.caller)
		canary := tc.foreign.Account.Name
		for _, op := range []string{"Query", "Mutation"} {
			def := w.types[op]
			if def == nil {
				continue
			}
			for _, f := range def.Fields {
				calls, err := w.calls(op, f, foreign)
				if err != nil {
					t.Errorf("%s: %v", tc.name, err)
					continue
				}
				for _, c := range calls {
					r := api.Do(t, tc.caller.Token, c.query, c.vars)
					if perItem[c.field] {
						var data map[string][]struct {
							Code    *string
							Account *struct{ ID string }
						}
						_ = json.Unmarshal(r.Data, &data)
						items := data[c.field]
						for _, it := range items {
							if it.Code == nil || *it.Code != "NOT_FOUND" || it.Account != nil {
								t.Errorf("%s: %s.%s with %v: an item is not NOT_FOUND: %s", tc.name, op, c.field, c.vars, r.Data)
							}
						}
						if len(items) == 0 && r.Code() != "NOT_FOUND" {
							t.Errorf("%s: %s.%s with %v: want NOT_FOUND items, got %q %s", tc.name, op, c.field, c.vars, r.Code(), r.Data)
						}
					} else if r.Code() != "NOT_FOUND" {
						t.Errorf("%s: %s.%s with %v: want NOT_FOUND, got %q %+v data=%s", tc.name, op, c.field, c.vars, r.Code(), r.Errors, r.Data)
					}
					var data map[string]json.RawMessage
					_ = json.Unmarshal(r.Data, &data)
					if v, ok := data[c.field]; ok && string(v) != "null" && !perItem[c.field] {
						t.Errorf("%s: %s.%s returned data %s for a foreign ID", tc.name, op, c.field, v)
					}
					raw, _ := json.Marshal(r)
					if strings.Contains(string(raw), canary) {
						t.Errorf("%s: %s.%s answer mentions %q: %s", tc.name, op, c.field, canary, raw)
					}
				}
				// Control: with the caller's own IDs the same field must get
				// past the scope for at least one ID type, or the walker
				// proves nothing about it.
				ownCalls, err := w.calls(op, f, own)
				if err != nil || len(ownCalls) == 0 {
					continue
				}
				reached := false
				for _, c := range ownCalls {
					if r := api.Do(t, tc.caller.Token, c.query, c.vars); r.Code() != "NOT_FOUND" {
						reached = true
					}
				}
				if reached {
					exercised[op+"."+f.Name] = true
				}
			}
		}
	}
	_ = ctx
	// Every ID-taking field must have been exercised past the scope check by
	// at least one caller.
	var missing []string
	for _, op := range []string{"Query", "Mutation"} {
		for _, f := range w.types[op].Fields {
			calls, _ := w.calls(op, f, ownIDs(t, api, tr.D1))
			if len(calls) > 0 && !exercised[op+"."+f.Name] {
				missing = append(missing, op+"."+f.Name)
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("the walker never got past the scope check of: %v (give the walker valid sample values for them)", missing)
	}
	if len(exercised) < 5 {
		t.Errorf("only %d fields exercised: %v", len(exercised), exercised)
	}
}

func foreignIDs(t *testing.T, api *testkit.API, p testkit.Party) idSet {
	t.Helper()
	tr := api.Tree
	tokID := tokenID(t, tr, p.User)
	inbox, delivery := notificationOf(t, api, p)
	return idSet{"Account": ids.Encode("Account", p.Account.ID), "User": ids.Encode("User", userID(p)), "ApiToken": ids.Encode("ApiToken", tokID),
		"InboxMessage": ids.Encode("InboxMessage", inbox), "Delivery": ids.Encode("Delivery", delivery),
		"CustomerGroup": ids.Encode("CustomerGroup", groupOf(t, api, p)), "SharingUnit": ids.Encode("SharingUnit", unitOf(t, api, p)),
		"Invitation": ids.Encode("Invitation", invitationOf(t, api, p)), "Unbinding": ids.Encode("Unbinding", unbindingOf(t, api, p)),
		"Migration": ids.Encode("Migration", migrationOf(t, api, p))}.withBilling(t, api, p).withVouchers(t, api, p).withAppLinks(t, api, p).withWebhooks(t, api, p)
}

// withBilling adds a DRAFT partner bill of p's account, settling with the
// platform (so no walker may issue it), and its PENDING incentive
// (straight in the database).
func (s idSet) withBilling(t *testing.T, api *testkit.API, p testkit.Party) idSet {
	t.Helper()
	var bill, inc int64
	db := api.Store.DB
	if err := db.Raw(`INSERT INTO partner_bills (partner_id, settles_with_id, month, generated_at) VALUES (?, ?, 200001, now())
		ON CONFLICT (partner_id, month) DO UPDATE SET generated_at = EXCLUDED.generated_at RETURNING id`, p.Account.ID, api.Platform.Account.ID).Scan(&bill).Error; err != nil {
		t.Fatal(err)
	}
	if err := db.Raw(`WITH pol AS (INSERT INTO incentive_policies (name, effective_month, tiers, created_at, created_by)
			VALUES ('walker', 200001, '[]', now(), 'walker') ON CONFLICT (effective_month) DO UPDATE SET name = EXCLUDED.name RETURNING id)
		INSERT INTO incentives (partner_id, month, bill_id, policy_id, revenue, percent, amount, status, updated_at)
		SELECT ?, 200001, ?, pol.id, 0, 0, 0, 'PENDING', now() FROM pol
		ON CONFLICT (partner_id, month) DO UPDATE SET updated_at = EXCLUDED.updated_at RETURNING id`, p.Account.ID, bill).Scan(&inc).Error; err != nil {
		t.Fatal(err)
	}
	s["PartnerBill"], s["Incentive"] = ids.Encode("PartnerBill", bill), ids.Encode("Incentive", inc)
	return s
}

// withAppLinks adds an application link of p's account and a decided
// (REJECTED) application through it, made by p itself (so no walker may
// approve anything).
func (s idSet) withAppLinks(t *testing.T, api *testkit.API, p testkit.Party) idSet {
	t.Helper()
	var row struct{ Link, Application int64 }
	if err := api.Store.DB.Raw(`WITH l AS (INSERT INTO application_links (partner_id, kind, token_hash, expires_at)
			VALUES (?::bigint, 'CUSTOMER', sha256(random()::text::bytea), now() + interval '1 day') RETURNING id),
		a AS (INSERT INTO link_applications (link_id, partner_id, applicant_id, kind, status, reason, applied_at, decided_at)
			SELECT l.id, ?::bigint, ?::bigint, 'CUSTOMER', 'REJECTED', 'walker', now(), now() FROM l RETURNING id)
		SELECT (SELECT id FROM l) AS link, (SELECT id FROM a) AS application`, p.Account.ID, p.Account.ID, p.Account.ID).Scan(&row).Error; err != nil || row.Application == 0 {
		t.Fatalf("application link fixture of %s: %+v %v", p.Account.Name, row, err)
	}
	s["ApplicationLink"] = ids.Encode("ApplicationLink", row.Link)
	s["LinkApplication"] = ids.Encode("LinkApplication", row.Application)
	return s
}

// withWebhooks adds a webhook endpoint of p's account (straight in the
// database: its URL is never called).
func (s idSet) withWebhooks(t *testing.T, api *testkit.API, p testkit.Party) idSet {
	t.Helper()
	var id int64
	if err := api.Store.DB.Raw(`INSERT INTO webhook_endpoints (account_id, url, event_types, secret, created_at, updated_at)
		VALUES (?, 'https://93.184.216.34/walker', ARRAY['credit.allocated'], 'whsec_walker', now(), now()) RETURNING id`, p.Account.ID).Scan(&id).Error; err != nil || id == 0 {
		t.Fatalf("webhook fixture of %s: %v", p.Account.Name, err)
	}
	s["WebhookEndpoint"] = ids.Encode("WebhookEndpoint", id)
	return s
}

// withVouchers adds a voucher template of p's account, a completed issue
// of it and a cancelled voucher whose customer and issuer are p's account
// (straight in the database: the walker only needs them to exist, and
// nothing a control call does to them changes a balance).
func (s idSet) withVouchers(t *testing.T, api *testkit.API, p testkit.Party) idSet {
	t.Helper()
	var row struct{ Template, Issuance, Voucher int64 }
	if err := api.Store.DB.Raw(`WITH t AS (INSERT INTO voucher_templates (partner_id, name, face_value, product_scope, billing_modes, valid_days,
			per_customer_limit, reason, created_at, updated_at) VALUES (?::bigint, 'walker', 1, 'ALL', 'ALL', 1, 1, 'walker', now(), now()) RETURNING id),
		i AS (INSERT INTO voucher_issuances (template_id, partner_id, customer_ids, face_total, status, requested_by, requested_at, results)
			SELECT t.id, ?::bigint, ARRAY[?::bigint], 1, 'COMPLETED', 'walker', now(), '[]' FROM t RETURNING id, template_id),
		v AS (INSERT INTO vouchers (template_id, issuance_id, issuer_id, customer_id, face_value, remaining, status, product_scope, product_codes,
			billing_modes, effective_at, expires_at, issued_at, closed_at, close_reason)
			SELECT i.template_id, i.id, ?::bigint, ?::bigint, 1, 0, 'CANCELLED', 'ALL', '{}', 'ALL', now(), now() + interval '1 day', now(), now(), 'walker' FROM i RETURNING id)
		SELECT (SELECT id FROM t) AS template, (SELECT id FROM i) AS issuance, (SELECT id FROM v) AS voucher`,
		p.Account.ID, p.Account.ID, p.Account.ID, p.Account.ID, p.Account.ID).Scan(&row).Error; err != nil || row.Voucher == 0 {
		t.Fatalf("voucher fixture of %s: %+v %v", p.Account.Name, row, err)
	}
	s["VoucherTemplate"], s["VoucherIssuance"], s["Voucher"] = ids.Encode("VoucherTemplate", row.Template), ids.Encode("VoucherIssuance", row.Issuance), ids.Encode("Voucher", row.Voucher)
	return s
}

// invitationOf makes a (declined) invitation sent by partner p (straight in
// the database) of the fixture's personal account.
func invitationOf(t *testing.T, api *testkit.API, p testkit.Party) int64 {
	t.Helper()
	var id int64
	if err := api.Store.DB.Raw(`INSERT INTO invitations (partner_id, account_id, email, token_hash, expires_at, status)
		VALUES (?, ?, 'walker@personal.test', sha256(random()::text::bytea), now() + interval '1 day', 'DECLINED') RETURNING id`,
		p.Account.ID, api.P1.Account.ID).Scan(&id).Error; err != nil {
		t.Fatal(err)
	}
	return id
}

// unbindingOf makes a (rejected) unbinding whose parties are p's account.
func unbindingOf(t *testing.T, api *testkit.API, p testkit.Party) int64 {
	t.Helper()
	var id int64
	if err := api.Store.DB.Raw(`INSERT INTO unbindings (customer_id, partner_id, requested_by, status, expires_at)
		VALUES (?, ?, 'PARTNER', 'REJECTED', now() + interval '1 day') RETURNING id`, p.Account.ID, p.Account.ID).Scan(&id).Error; err != nil {
		t.Fatal(err)
	}
	return id
}

// migrationOf makes a DRAFT migration batch received by p's account
// (straight in the database): only p's users see it.
func migrationOf(t *testing.T, api *testkit.API, p testkit.Party) int64 {
	t.Helper()
	source := api.Platform.Account.ID
	if p.Account.ID == source {
		source = api.P1.Account.ID
	}
	var id int64
	if err := api.Store.DB.Raw(`INSERT INTO migrations (receiver_id, source_id) VALUES (?, ?) RETURNING id`, p.Account.ID, source).Scan(&id).Error; err != nil {
		t.Fatal(err)
	}
	return id
}

// groupOf and unitOf make a billing group and a shared unit of partner p
// (straight in the database: the walker only needs them to exist).
func groupOf(t *testing.T, api *testkit.API, p testkit.Party) int64 {
	t.Helper()
	var id int64
	if err := api.Store.DB.Raw(`INSERT INTO customer_groups (partner_id, name, administrator_id) VALUES (?, 'walker', ?) RETURNING id`,
		p.Account.ID, p.Account.ID).Scan(&id).Error; err != nil {
		t.Fatal(err)
	}
	return id
}

func unitOf(t *testing.T, api *testkit.API, p testkit.Party) int64 {
	t.Helper()
	var id int64
	if err := api.Store.DB.Raw(`INSERT INTO sharing_units (partner_id, name) VALUES (?, 'walker') RETURNING id`, p.Account.ID).Scan(&id).Error; err != nil {
		t.Fatal(err)
	}
	return id
}

// ownIDs are IDs inside the caller's scope: its own account, and a spare
// user with a spare token (so the control may revoke it harmlessly).
func ownIDs(t *testing.T, api *testkit.API, p testkit.Party) idSet {
	t.Helper()
	tr := api.Tree
	spare := tr.AddUser(t, p.Account, models.RoleViewer)
	inbox, delivery := notificationOf(t, api, p)
	return idSet{"Account": ids.Encode("Account", p.Account.ID), "User": ids.Encode("User", spare.User.ID), "ApiToken": ids.Encode("ApiToken", tokenID(t, tr, spare.User)),
		"InboxMessage": ids.Encode("InboxMessage", inbox), "Delivery": ids.Encode("Delivery", delivery),
		"CustomerGroup": ids.Encode("CustomerGroup", groupOf(t, api, p)), "SharingUnit": ids.Encode("SharingUnit", unitOf(t, api, p)),
		"Invitation": ids.Encode("Invitation", invitationOf(t, api, p)), "Unbinding": ids.Encode("Unbinding", unbindingOf(t, api, p)),
		"Migration": ids.Encode("Migration", migrationOf(t, api, p))}.withBilling(t, api, p).withVouchers(t, api, p).withAppLinks(t, api, p).withWebhooks(t, api, p)
}

// notificationOf gives party p's admin a notification (fanned out and, in
// site, delivered) and returns its inbox message and its email delivery.
func notificationOf(t *testing.T, api *testkit.API, p testkit.Party) (inboxID, deliveryID int64) {
	t.Helper()
	ctx := context.Background()
	payload, _ := json.Marshal(notify.CreditLimitSet{PartnerID: p.Account.ID, Limit: "1.00", Previous: "0.00"})
	outboxID := 1_000_000 + p.Account.ID
	pending, err := api.Notify.FanOut(ctx, outboxID, notify.EventCreditLimitSet, payload)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range pending {
		_ = api.Notify.Deliver(ctx, d.DeliveryID, false) // in-site lands; email has no sender here
	}
	var row struct{ Inbox, Delivery int64 }
	err = api.Tree.Store.DB.Raw(`SELECT (SELECT m.id FROM inbox_messages m JOIN deliveries d ON d.id = m.delivery_id WHERE d.outbox_id = ? LIMIT 1) AS inbox,
		(SELECT id FROM deliveries WHERE outbox_id = ? AND channel = 'EMAIL' LIMIT 1) AS delivery`, outboxID, outboxID).Scan(&row).Error
	if err != nil || row.Inbox == 0 || row.Delivery == 0 {
		t.Fatalf("notification fixture of %s: %+v, %v", p.Account.Name, row, err)
	}
	return row.Inbox, row.Delivery
}

func userID(p testkit.Party) int64 {
	if p.User == nil {
		return 1
	}
	return p.User.ID
}

func tokenID(t *testing.T, tr *testkit.Tree, u *models.User) int64 {
	t.Helper()
	var id int64
	q := "SELECT id FROM api_tokens ORDER BY id LIMIT 1"
	args := []any{}
	if u != nil {
		q, args = "SELECT id FROM api_tokens WHERE user_id = ? ORDER BY id DESC LIMIT 1", []any{u.ID}
	}
	if err := tr.Store.DB.Raw(q, args...).Scan(&id).Error; err != nil || id == 0 {
		t.Fatalf("token id: %v", err)
	}
	return id
}
