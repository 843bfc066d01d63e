package spend

import (
	"fmt"

	"partnerd/apperr"
)

// Why a well-formed record is rejected on its own while the rest of its
// request is accepted (issue 5, point 6). Both paths use the same texts: the
// direct path fills their %s in Go, the staged path with PostgreSQL's
// format() in its one classifying statement. The first occurrence of an
// externalId in a request is the one considered; later ones are rejected. A
// conflict is reported, not rejected.
const (
	reasonDuplicateInRequest = "duplicate externalId in this request: the record at index %s has it"
	reasonUnknownCustomer    = "unknown customer"
	reasonNotCustomer        = "the account is a %s, not a customer or personal account"
	reasonNegative           = "negative amount"
	reasonActualAboveList    = "actual amount is greater than list amount"
	reasonFuture             = "usage time is in the future"
	reasonConflict           = "externalId already recorded with a different %s; the first version is kept"
)

// ErrForbidden answers an Ingest caller that is not a platform user with
// ADMIN or FINANCE.
var ErrForbidden = apperr.Forbiddenf("only platform users with ADMIN or FINANCE (the billing pipeline) may record expenditures")

// lineError is the VALIDATION error of a malformed line of a streamed
// request: it names the line, and the whole request is refused.
func lineError(line int, format string, args ...any) *apperr.Error {
	return apperr.Invalid("records", "line %d: %s", line, fmt.Sprintf(format, args...))
}

// recordError is the VALIDATION error of a malformed record given as a Go
// value (the GraphQL path): it names the record's 0-based index.
func recordError(index int64, format string, args ...any) *apperr.Error {
	return apperr.Invalid("records", "record %d: %s", index, fmt.Sprintf(format, args...))
}
