package resolvers

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"partnerd/accounts"
	"partnerd/ids"
)

// Compiled tree answers: a query that reads only accounts by id and their
// nested children connections, with the plain fields of accounts, is
// answered without gqlgen's field-by-field execution. gqlgen resolves every
// field of every node through its own function call, context and (for
// lists) goroutine, which costs tens of microseconds per account: a
// three-level tree of 1,111 accounts spent 45 ms of CPU per answer there and
// in the reflective scan of full rows. Here the plan of the query is read
// once, each children level is one statement for all its parents (selecting
// the summary columns only, as the lookahead does), and the JSON is written
// straight from the rows, in the order and with the escaping gqlgen uses.
//
// Only answers without errors are compiled: the root accounts go through
// the same scope check as the account resolver, and when anything is not
// plain (an account outside the scope, an invalid argument, a field that is
// not in the list below, @defer, a database error) the query runs through
// gqlgen as always, which then reports what is wrong. The server's tests
// compare both ways of answering, byte for byte, over a corpus of queries.

// AnswerTree answers the operation in ctx when it is a compilable tree
// query (see above); false when gqlgen must run it.
func (r *Resolver) AnswerTree(ctx context.Context) (*graphql.Response, bool) {
	if !graphql.HasOperationContext(ctx) {
		return nil, false
	}
	oc := graphql.GetOperationContext(ctx)
	if oc.Operation == nil || oc.Operation.Operation != ast.Query {
		return nil, false
	}
	t := &treeAnswer{ctx: ctx, oc: oc, r: r}
	roots, ok := t.planRoot(oc.Operation.SelectionSet)
	if !ok {
		return nil, false
	}
	for _, rt := range roots {
		if rt.account != nil && !t.fetchRoot(rt) {
			return nil, false
		}
	}
	var buf bytes.Buffer
	buf.Grow(4096)
	buf.WriteByte('{')
	for i, rt := range roots {
		writeKey(&buf, i, rt.key)
		if rt.account == nil {
			writeString(&buf, "Query")
			continue
		}
		t.writeAccount(&buf, rt.account, &rt.row)
	}
	buf.WriteByte('}')
	return &graphql.Response{Data: json.RawMessage(buf.Bytes())}, true
}

// treeAnswer is one compiled answer in the making.
type treeAnswer struct {
	ctx context.Context
	oc  *graphql.OperationContext
	r   *Resolver
	// fields counts the selected fields, bounded like the depth of the plan.
	fields int
}

// rootField is one field of the query root: account(id) or __typename.
type rootField struct {
	key     string
	id      int64
	account *accountPlan // nil for __typename
	row     accounts.Summary
}

// accountPlan is the selection on an account.
type accountPlan struct {
	fields []accountField
}

// accountField is one selected field of an account.
type accountField struct {
	key   string
	name  string
	conn  *connPlan // children
	depth int
}

// connPlan is one children connection: its arguments, its selection, and
// once fetched, its pages by parent.
type connPlan struct {
	key    childKey
	fields []connField
	// nodes are the account selections under edges { node }, one per
	// distinct edges/node response key.
	nodes  []*accountPlan
	pages  map[int64]*accounts.SummaryPage
	counts map[int64]int
	count  bool
}

// connField is one selected field of a connection, of its edges, or of its
// page info (sub holds the selection below edges and pageInfo).
type connField struct {
	key  string
	name string
	sub  []connField
	node *accountPlan // edges { node }
}

func (t *treeAnswer) collect(sel ast.SelectionSet, satisfies ...string) ([]graphql.CollectedField, bool) {
	fields := graphql.CollectFields(t.oc, sel, satisfies)
	for _, f := range fields {
		if len(f.Deferrables) > 0 {
			return nil, false
		}
	}
	t.fields += len(fields)
	return fields, t.fields <= 100_000
}

func (t *treeAnswer) planRoot(sel ast.SelectionSet) ([]*rootField, bool) {
	fields, ok := t.collect(sel, "Query")
	if !ok || len(fields) == 0 {
		return nil, false
	}
	out := make([]*rootField, 0, len(fields))
	for _, f := range fields {
		switch f.Name {
		case "__typename":
			out = append(out, &rootField{key: f.Alias})
		case "account":
			raw, _ := f.ArgumentMap(t.oc.Variables)["id"].(string)
			id, err := ids.Decode(raw, TypeAccount)
			if err != nil {
				return nil, false
			}
			p, ok := t.planAccount(f.Selections, 0)
			if !ok {
				return nil, false
			}
			out = append(out, &rootField{key: f.Alias, id: id, account: p})
		default:
			return nil, false
		}
	}
	return out, true
}

func (t *treeAnswer) planAccount(sel ast.SelectionSet, depth int) (*accountPlan, bool) {
	if depth > 16 {
		return nil, false
	}
	fields, ok := t.collect(sel, "Account", "Node")
	if !ok {
		return nil, false
	}
	p := &accountPlan{fields: make([]accountField, 0, len(fields))}
	for _, f := range fields {
		af := accountField{key: f.Alias, name: f.Name, depth: depth}
		switch f.Name {
		case "__typename", "id", "name", "kind", "status", "email", "phone", "currency", "tier":
		case "children":
			key, ok := childKeyFromArgs(f.ArgumentMap(t.oc.Variables))
			if !ok {
				return nil, false
			}
			c, ok := t.planConn(f.Selections, key, depth)
			if !ok {
				return nil, false
			}
			af.conn = c
		default:
			return nil, false
		}
		p.fields = append(p.fields, af)
	}
	return p, true
}

func (t *treeAnswer) planConn(sel ast.SelectionSet, key childKey, depth int) (*connPlan, bool) {
	fields, ok := t.collect(sel, "AccountConnection")
	if !ok {
		return nil, false
	}
	c := &connPlan{key: key}
	for _, f := range fields {
		cf := connField{key: f.Alias, name: f.Name}
		switch f.Name {
		case "__typename":
		case "totalCount":
			c.count = true
		case "pageInfo":
			sub, ok := t.collect(f.Selections, "PageInfo")
			if !ok {
				return nil, false
			}
			for _, s := range sub {
				switch s.Name {
				case "__typename", "hasNextPage", "endCursor":
					cf.sub = append(cf.sub, connField{key: s.Alias, name: s.Name})
				default:
					return nil, false
				}
			}
		case "edges":
			sub, ok := t.collect(f.Selections, "AccountEdge")
			if !ok {
				return nil, false
			}
			for _, s := range sub {
				ef := connField{key: s.Alias, name: s.Name}
				switch s.Name {
				case "__typename", "cursor":
				case "node":
					n, ok := t.planAccount(s.Selections, depth+1)
					if !ok {
						return nil, false
					}
					ef.node = n
					c.nodes = append(c.nodes, n)
				default:
					return nil, false
				}
				cf.sub = append(cf.sub, ef)
			}
		default:
			return nil, false
		}
		c.fields = append(c.fields, cf)
	}
	return c, true
}

// fetchRoot reads a root account through the scope and everything its plan
// selects below it. The root and its first children connection come in one
// statement.
func (t *treeAnswer) fetchRoot(rt *rootField) bool {
	var first *connPlan
	for i := range rt.account.fields {
		if c := rt.account.fields[i].conn; c != nil {
			first = c
			break
		}
	}
	if first == nil {
		a, err := t.r.Accounts.GetSummary(t.ctx, rt.id)
		if err != nil {
			return false
		}
		rt.row = a
		return true
	}
	root, page, err := t.r.Accounts.SummaryAndChildren(t.ctx, rt.id, first.key.Filter, first.key.First, first.key.After)
	if err != nil {
		return false
	}
	rt.row = root
	parents := []int64{root.ID}
	return t.fill(first, parents, map[int64]*accounts.SummaryPage{root.ID: page}) &&
		t.fetch(rt.account, []accounts.Summary{root}, first)
}

// fetch reads, for the account rows selected by p, every children
// connection p selects (but done, already read) and, recursively, the
// connections below: one page statement (and one count statement when
// totalCount is asked) per connection field, for all of its parents at
// once.
func (t *treeAnswer) fetch(p *accountPlan, rows []accounts.Summary, done *connPlan) bool {
	if len(rows) == 0 {
		return true
	}
	parents := make([]int64, len(rows))
	for i := range rows {
		parents[i] = rows[i].ID
	}
	for i := range p.fields {
		c := p.fields[i].conn
		if c == nil || c == done {
			continue
		}
		pages, err := t.r.Accounts.ChildSummaries(t.ctx, parents, c.key.Filter, c.key.First, c.key.After)
		if err != nil || !t.fill(c, parents, pages) {
			return false
		}
	}
	return true
}

// fill keeps the pages of connection c for its parents, counts their
// children when totalCount is asked, and reads what the nodes select.
func (t *treeAnswer) fill(c *connPlan, parents []int64, pages map[int64]*accounts.SummaryPage) bool {
	c.pages = pages
	if c.count {
		counts, err := t.r.Accounts.CountChildren(t.ctx, parents, c.key.Filter)
		if err != nil {
			return false
		}
		c.counts = counts
	}
	if len(c.nodes) == 0 {
		return true
	}
	var below []accounts.Summary
	for _, id := range parents {
		below = append(below, pages[id].Accounts...)
	}
	for _, n := range c.nodes {
		if !t.fetch(n, below, nil) {
			return false
		}
	}
	return true
}

func (t *treeAnswer) writeAccount(buf *bytes.Buffer, p *accountPlan, a *accounts.Summary) {
	buf.WriteByte('{')
	for i := range p.fields {
		f := &p.fields[i]
		writeKey(buf, i, f.key)
		switch f.name {
		case "__typename":
			writeString(buf, "Account")
		case "id":
			buf.WriteByte('"') // base64url needs no escaping
			buf.Write(ids.AppendEncode(buf.AvailableBuffer(), TypeAccount, a.ID))
			buf.WriteByte('"')
		case "name":
			writeString(buf, a.Name)
		case "kind":
			writeString(buf, string(a.Kind))
		case "status":
			writeString(buf, string(a.Status))
		case "currency":
			writeString(buf, a.Currency)
		case "email":
			writeOptString(buf, a.Email)
		case "phone":
			writeOptString(buf, a.Phone)
		case "tier":
			buf.Write(strconv.AppendInt(buf.AvailableBuffer(), int64(a.Depth), 10))
		case "children":
			t.writeConn(buf, f.conn, a.ID)
		}
	}
	buf.WriteByte('}')
}

func (t *treeAnswer) writeConn(buf *bytes.Buffer, c *connPlan, parent int64) {
	page := c.pages[parent]
	buf.WriteByte('{')
	for i := range c.fields {
		f := &c.fields[i]
		writeKey(buf, i, f.key)
		switch f.name {
		case "__typename":
			writeString(buf, "AccountConnection")
		case "totalCount":
			buf.Write(strconv.AppendInt(buf.AvailableBuffer(), int64(c.counts[parent]), 10))
		case "pageInfo":
			buf.WriteByte('{')
			for j, s := range f.sub {
				writeKey(buf, j, s.key)
				switch s.name {
				case "__typename":
					writeString(buf, "PageInfo")
				case "hasNextPage":
					buf.WriteString(strconv.FormatBool(page.HasNext))
				case "endCursor":
					if n := len(page.Accounts); n > 0 {
						writeCursor(buf, page.Accounts[n-1].ID)
					} else {
						buf.WriteString("null")
					}
				}
			}
			buf.WriteByte('}')
		case "edges":
			buf.WriteByte('[')
			for k := range page.Accounts {
				a := &page.Accounts[k]
				if k > 0 {
					buf.WriteByte(',')
				}
				buf.WriteByte('{')
				for j, s := range f.sub {
					writeKey(buf, j, s.key)
					switch s.name {
					case "__typename":
						writeString(buf, "AccountEdge")
					case "cursor":
						writeCursor(buf, a.ID)
					case "node":
						t.writeAccount(buf, s.node, a)
					}
				}
				buf.WriteByte('}')
			}
			buf.WriteByte(']')
		}
	}
	buf.WriteByte('}')
}

// writeString writes s as a JSON string, byte for byte as gqlgen's
// answers carry it: gqlgen's String and ID marshalers escape quotes,
// backslashes and control characters, and encoding/json, which writes the
// response, then escapes <, >, & and U+2028/U+2029 too.
func writeString(buf *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	buf.WriteByte('"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\', c == '"':
			buf.WriteString(s[start:i])
			buf.WriteByte('\\')
			buf.WriteByte(c)
		case c == '\t', c == '\r', c == '\n':
			buf.WriteString(s[start:i])
			buf.WriteByte('\\')
			buf.WriteByte(shortEscape(c))
		case c < 0x20, c == '<', c == '>', c == '&':
			buf.WriteString(s[start:i])
			buf.WriteString(`\u00`)
			buf.WriteByte(hex[c>>4])
			buf.WriteByte(hex[c&0xf])
		case c == 0xE2 && i+2 < len(s) && s[i+1] == 0x80 && s[i+2]&^1 == 0xA8:
			buf.WriteString(s[start:i])
			buf.WriteString(`\u202`)
			buf.WriteByte(hex[s[i+2]&0xf])
			i += 2
		default:
			continue
		}
		start = i + 1
	}
	buf.WriteString(s[start:])
	buf.WriteByte('"')
}

// writeKey starts the i-th member of a JSON object: a comma after the
// first, then the key and its colon.
func writeKey(buf *bytes.Buffer, i int, key string) {
	if i > 0 {
		buf.WriteByte(',')
	}
	writeString(buf, key)
	buf.WriteByte(':')
}

// writeCursor writes the cursor of a row as a JSON string (base64url needs
// no escaping).
func writeCursor(buf *bytes.Buffer, id int64) {
	buf.WriteByte('"')
	buf.Write(appendCursor(buf.AvailableBuffer(), id))
	buf.WriteByte('"')
}

// shortEscape is the letter of \t, \n or \r.
func shortEscape(c byte) byte {
	switch c {
	case '\t':
		return 't'
	case '\n':
		return 'n'
	}
	return 'r'
}

func writeOptString(buf *bytes.Buffer, s *string) {
	if s == nil {
		buf.WriteString("null")
		return
	}
	writeString(buf, *s)
}
