package server

import (
	"context"
	"strconv"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"partnerd/apperr"
)

// Limits bound what one request may ask of the server.
type Limits struct {
	// ParserTokens bounds the tokens of a query document (default 15,000).
	ParserTokens int
	// Depth bounds the nesting of selections (default 12); introspection
	// subtrees are bounded separately by IntrospectionDepth.
	Depth int
	// IntrospectionDepth bounds __schema/__type subtrees (default 16).
	IntrospectionDepth int
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

// depthLimit refuses operations nested deeper than its limits.
type depthLimit struct {
	max, introspection int
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = depthLimit{}

func (depthLimit) ExtensionName() string                   { return "DepthLimit" }
func (depthLimit) Validate(graphql.ExecutableSchema) error { return nil }

func (d depthLimit) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if oc.Operation == nil {
		return nil
	}
	depth, intro := selectionDepth(oc.Operation.SelectionSet, oc.Doc.Fragments, 0, map[string]bool{})
	if depth > d.max {
		return &gqlerror.Error{Message: "the query is nested too deeply: at most " + strconv.Itoa(d.max) + " levels",
			Extensions: map[string]any{"code": string(apperr.Validation), "reason": "DEPTH_LIMIT_EXCEEDED"}}
	}
	if intro > d.introspection {
		return &gqlerror.Error{Message: "the introspection query is nested too deeply: at most " + strconv.Itoa(d.introspection) + " levels",
			Extensions: map[string]any{"code": string(apperr.Validation), "reason": "DEPTH_LIMIT_EXCEEDED"}}
	}
	return nil
}

// selectionDepth returns the depth of data fields and of introspection
// subtrees under set; visiting guards against fragment cycles.
func selectionDepth(set ast.SelectionSet, frags ast.FragmentDefinitionList, level int, visiting map[string]bool) (data, intro int) {
	for _, sel := range set {
		var d, i int
		switch s := sel.(type) {
		case *ast.Field:
			if s.Name == "__schema" || s.Name == "__type" {
				sub, subIntro := selectionDepth(s.SelectionSet, frags, 0, visiting)
				i = max(sub, subIntro) + 1
				d = level
			} else {
				d, i = selectionDepth(s.SelectionSet, frags, level+1, visiting)
				d = max(d, level+1)
			}
		case *ast.InlineFragment:
			d, i = selectionDepth(s.SelectionSet, frags, level, visiting)
		case *ast.FragmentSpread:
			if visiting[s.Name] {
				continue
			}
			if f := frags.ForName(s.Name); f != nil {
				visiting[s.Name] = true
				d, i = selectionDepth(f.SelectionSet, frags, level, visiting)
				delete(visiting, s.Name)
			}
		}
		data, intro = max(data, d), max(intro, i)
	}
	return data, intro
}
