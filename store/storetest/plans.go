package storetest

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"gorm.io/gorm"

	"partnerd/store"
)

// Planned is a statement a store ran that reads a watched table, with the
// partitions of that table its plan reads.
type Planned struct {
	// SQL is the statement (the query of a DECLARE ... CURSOR FOR, or of a
	// CREATE TABLE ... AS).
	SQL string
	// Partitions are the partitions (or the table itself) the plan reads,
	// after pruning, sorted.
	Partitions []string
	// Err is why the statement could not be planned.
	Err error
}

// Plans records, for every statement run through a store's gorm handle
// that names a table, the partitions of it that its plan reads.
type Plans struct {
	table string
	mu    sync.Mutex
	on    bool
	list  []Planned
}

// cursorOrCreate matches what EXPLAIN cannot plan in front of a query it
// can: a cursor's declaration, a CREATE TABLE ... AS.
var cursorOrCreate = regexp.MustCompile(`(?is)^\s*(DECLARE\s.*?\sCURSOR\s+FOR|CREATE\s+TEMP(ORARY)?\s+TABLE\s+\S+(\s+ON\s+COMMIT\s+DROP)?\s+AS)\s`)

// WatchPlans starts recording, off until Start, the plans of the statements
// st runs through st.DB (queries, rows and raw statements) that name table.
// Each is planned (EXPLAIN, with its arguments) just before it runs, on its
// own connection: in its transaction, next to the temporary tables it
// reads.
func WatchPlans(t testing.TB, st *store.Store, table string) *Plans {
	t.Helper()
	p := &Plans{table: table}
	record := func(db *gorm.DB) {
		p.mu.Lock()
		on := p.on
		p.mu.Unlock()
		q := db.Statement.SQL.String()
		if !on || !strings.Contains(q, table) {
			return
		}
		if m := cursorOrCreate.FindString(q); m != "" {
			q = q[len(m):]
		}
		pl := Planned{SQL: q}
		var raw []byte
		rows, err := db.Statement.ConnPool.QueryContext(db.Statement.Context, "EXPLAIN (FORMAT JSON) "+q, db.Statement.Vars...)
		if err == nil {
			if rows.Next() {
				err = rows.Scan(&raw)
			}
			if cerr := rows.Close(); err == nil {
				err = cerr
			}
		}
		if err == nil {
			pl.Partitions, err = partitionsIn(raw, table)
		}
		pl.Err = err
		p.mu.Lock()
		p.list = append(p.list, pl)
		p.mu.Unlock()
	}
	cb := st.DB.Callback()
	for _, err := range []error{
		cb.Query().Before("gorm:query").Register("storetest:plans", record),
		cb.Row().Before("gorm:row").Register("storetest:plans", record),
		cb.Raw().Before("gorm:raw").Register("storetest:plans", record),
	} {
		if err != nil {
			t.Fatalf("watch plans: %v", err)
		}
	}
	return p
}

// Start clears what was recorded and records from now on.
func (p *Plans) Start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.on, p.list = true, nil
}

// Stop stops recording and returns what was recorded since Start.
func (p *Plans) Stop() []Planned {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.on = false
	return p.list
}

// partitionsIn returns the relations of a JSON plan that are table or its
// partitions (<table>_p…, <table>_default).
func partitionsIn(raw []byte, table string) ([]string, error) {
	var plan any
	if err := json.Unmarshal(raw, &plan); err != nil {
		return nil, err
	}
	var parts []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if rel, _ := v["Relation Name"].(string); rel == table || strings.HasPrefix(rel, table+"_p") || rel == table+"_default" {
				if !slices.Contains(parts, rel) {
					parts = append(parts, rel)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(plan)
	slices.Sort(parts)
	return parts, nil
}
