package server

import (
	"context"
	"strconv"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"

	"partnerd/apperr"
)

// Limits bound what one request may ask of the server. Depth, Fields,
// Aliases, Directives and SchemaFields are checked on the parsed document
// before gqlgen validates it (validation compares every pair of fields
// sharing a response name, and gqlgen's complexity walk spreads a fragment
// at each use: both grow faster than the document), with fragments counted
// at every spread; a document over one of them is refused with VALIDATION
// and a reason (DEPTH_LIMIT_EXCEEDED, FIELD_LIMIT_EXCEEDED,
// ALIAS_LIMIT_EXCEEDED, DIRECTIVE_LIMIT_EXCEEDED,
// INTROSPECTION_LIMIT_EXCEEDED).
type Limits struct {
	// ParserTokens bounds the tokens of a query document (default 15,000).
	ParserTokens int
	// Depth bounds the nesting of selections (default 12); introspection
	// subtrees are bounded separately by IntrospectionDepth.
	Depth int
	// IntrospectionDepth bounds __schema/__type subtrees (default 16).
	IntrospectionDepth int
	// Fields bounds the fields of an operation, or of one fragment, a
	// fragment's fields counted at each of its spreads (default 500; the
	// full introspection query has about 200).
	Fields int
	// Aliases bounds the aliased fields of an operation (default 100).
	// Without an alias a repeated field runs once; with one it runs again,
	// which the complexity of a cheap field (me, account) does not price.
	// The schema has no list-by-IDs field, so a client fetching several
	// accounts aliases account(id:): 100 leaves room for that.
	Aliases int
	// Directives bounds the directives of an operation (default 50).
	Directives int
	// SchemaFields bounds the __schema fields of an operation (default 1):
	// each walks the whole schema, one answers everything a client asks,
	// and the complexity limit does not count introspection.
	SchemaFields int
	// ListItems bounds each list in the variables (default 10,000; the
	// longest list an operation takes is 1,000 IDs): checked before gqlgen
	// coerces the variables, item by item.
	ListItems int
	// Complexity bounds the computed cost of an operation (default 100,000;
	// list fields cost their page size times their children).
	Complexity int
	// BodyBytes bounds a JSON request body (default 1 MiB).
	BodyBytes int64
	// UploadBytes bounds a multipart request body (default 20 MiB).
	UploadBytes int64
}

func (l *Limits) defaults() {
	if l.ParserTokens == 0 {
		l.ParserTokens = 15000
	}
	if l.Depth == 0 {
		l.Depth = 12
	}
	if l.IntrospectionDepth == 0 {
		l.IntrospectionDepth = 16
	}
	if l.Fields == 0 {
		l.Fields = 500
	}
	if l.Aliases == 0 {
		l.Aliases = 100
	}
	if l.Directives == 0 {
		l.Directives = 50
	}
	if l.SchemaFields == 0 {
		l.SchemaFields = 1
	}
	if l.ListItems == 0 {
		l.ListItems = 10000
	}
	if l.Complexity == 0 {
		l.Complexity = 100000
	}
	if l.BodyBytes == 0 {
		l.BodyBytes = 1 << 20
	}
	if l.UploadBytes == 0 {
		l.UploadBytes = 20 << 20
	}
}

// operationLimits refuses documents over the Limits before gqlgen
// validates them, variables with a list over ListItems, and a document of
// several operations sent without an operationName. A document in the
// query cache went through here before it was validated, so it is not
// measured again.
type operationLimits struct {
	limits Limits
	cache  graphql.Cache[*ast.QueryDocument]
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = operationLimits{}

func (operationLimits) ExtensionName() string                   { return "OperationLimits" }
func (operationLimits) Validate(graphql.ExecutableSchema) error { return nil }

func (o operationLimits) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	if n := longestList(p.Variables); n > o.limits.ListItems {
		return limitError("a list in the variables has "+strconv.Itoa(n)+" items: at most "+strconv.Itoa(o.limits.ListItems), "LIST_LIMIT_EXCEEDED")
	}
	if p.Query == "" {
		return nil
	}
	doc, cached := o.cache.Get(ctx, p.Query)
	if !cached {
		var err error
		doc, err = parser.ParseQueryWithTokenLimit(&ast.Source{Input: p.Query}, o.limits.ParserTokens)
		if err != nil {
			return nil // gqlgen parses it again and reports the error
		}
		if gerr := o.limits.check(doc); gerr != nil {
			return gerr
		}
	}
	if p.OperationName == "" && len(doc.Operations) > 1 {
		return limitError("the document holds "+strconv.Itoa(len(doc.Operations))+" operations: name the one to run in operationName", "OPERATION_NAME_REQUIRED")
	}
	return nil
}

// longestList returns the length of the longest list in decoded JSON v.
func longestList(v any) int {
	n := 0
	switch v := v.(type) {
	case []any:
		n = len(v)
		for _, e := range v {
			n = max(n, longestList(e))
		}
	case map[string]any:
		for _, e := range v {
			n = max(n, longestList(e))
		}
	}
	return n
}

// check measures every operation of doc and every fragment on its own (a
// fragment no operation spreads is still validated).
func (l Limits) check(doc *ast.QueryDocument) *gqlerror.Error {
	m := newMeasurer(doc.Fragments)
	for _, op := range doc.Operations {
		s := m.set(op.SelectionSet)
		s.directives = sat(s.directives, len(op.Directives))
		if s.depth > l.Depth {
			return limitError("the query is nested too deeply: at most "+strconv.Itoa(l.Depth)+" levels", "DEPTH_LIMIT_EXCEEDED")
		}
		if s.intro > l.IntrospectionDepth {
			return limitError("the introspection query is nested too deeply: at most "+strconv.Itoa(l.IntrospectionDepth)+" levels", "DEPTH_LIMIT_EXCEEDED")
		}
		if gerr := l.checkCounts(s); gerr != nil {
			return gerr
		}
	}
	for _, f := range doc.Fragments {
		// Depth is judged where a fragment is spread: introspection
		// fragments (TypeRef) are deep on their own.
		if gerr := l.checkCounts(m.fragment(f.Name)); gerr != nil {
			return gerr
		}
	}
	return nil
}

// checkCounts checks the most specific count first: a flood of aliased
// __schema fields is an introspection refusal, not a field count.
func (l Limits) checkCounts(s shape) *gqlerror.Error {
	switch {
	case s.schemas > l.SchemaFields:
		return limitError("the query asks for __schema too many times: at most "+strconv.Itoa(l.SchemaFields), "INTROSPECTION_LIMIT_EXCEEDED")
	case s.aliases > l.Aliases:
		return limitError("the query has too many aliases: at most "+strconv.Itoa(l.Aliases), "ALIAS_LIMIT_EXCEEDED")
	case s.directives > l.Directives:
		return limitError("the query has too many directives: at most "+strconv.Itoa(l.Directives), "DIRECTIVE_LIMIT_EXCEEDED")
	case s.fields > l.Fields:
		return limitError("the query selects too many fields: at most "+strconv.Itoa(l.Fields)+", a fragment's fields counted at each spread", "FIELD_LIMIT_EXCEEDED")
	}
	return nil
}

func limitError(msg, reason string) *gqlerror.Error {
	return &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": string(apperr.Validation), "reason": reason}}
}

// shape is what a selection set asks for once its fragments are spread.
// Counts saturate at maxCount: fragments spreading one another twice over
// reach 2^n fields in n fragments.
type shape struct {
	// depth is the levels of data fields in the set (1: leaves only);
	// introspection fields add none.
	depth int
	// intro is the levels of the deepest __schema/__type subtree.
	intro                                int
	fields, aliases, directives, schemas int
}

const maxCount = 1 << 30

func sat(a, b int) int { return min(a+b, maxCount) }

func (s *shape) add(o shape) {
	s.depth, s.intro = max(s.depth, o.depth), max(s.intro, o.intro)
	s.fields, s.aliases = sat(s.fields, o.fields), sat(s.aliases, o.aliases)
	s.directives, s.schemas = sat(s.directives, o.directives), sat(s.schemas, o.schemas)
}

// measurer measures the selection sets of one document. Each fragment is
// measured once and its shape reused at every spread, so the walk is
// linear in the document, whatever its fragments multiply to.
type measurer struct {
	frags map[string]*ast.FragmentDefinition
	// memo holds measured fragments; nil while one is being measured,
	// so a cycle (which validation refuses) ends there.
	memo map[string]*shape
}

func newMeasurer(frags ast.FragmentDefinitionList) *measurer {
	m := &measurer{frags: make(map[string]*ast.FragmentDefinition, len(frags)), memo: make(map[string]*shape, len(frags))}
	for _, f := range frags {
		if _, dup := m.frags[f.Name]; !dup {
			m.frags[f.Name] = f
		}
	}
	return m
}

func (m *measurer) set(set ast.SelectionSet) shape {
	var s shape
	for _, sel := range set {
		switch n := sel.(type) {
		case *ast.Field:
			sub := m.set(n.SelectionSet)
			own := shape{fields: 1, directives: len(n.Directives)}
			if n.Alias != "" && n.Alias != n.Name {
				own.aliases = 1
			}
			if n.Name == "__schema" || n.Name == "__type" {
				if n.Name == "__schema" {
					own.schemas = 1
				}
				own.intro = max(sub.depth, sub.intro) + 1
				sub.depth, sub.intro = 0, 0
			} else {
				own.depth = sub.depth + 1
			}
			own.add(sub)
			s.add(own)
		case *ast.InlineFragment:
			s.directives = sat(s.directives, len(n.Directives))
			s.add(m.set(n.SelectionSet))
		case *ast.FragmentSpread:
			s.directives = sat(s.directives, len(n.Directives))
			s.add(m.fragment(n.Name))
		}
	}
	return s
}

func (m *measurer) fragment(name string) shape {
	if s, seen := m.memo[name]; seen {
		if s == nil {
			return shape{}
		}
		return *s
	}
	f := m.frags[name]
	if f == nil {
		return shape{}
	}
	m.memo[name] = nil
	s := m.set(f.SelectionSet)
	s.directives = sat(s.directives, len(f.Directives))
	m.memo[name] = &s
	return s
}
