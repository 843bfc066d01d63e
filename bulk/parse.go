package bulk

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/shopspring/decimal"

	"partnerd/apperr"
	"partnerd/guard"
	"partnerd/migration"
	"partnerd/models"
)

// The columns of the templates.
const (
	ColumnCustomer        = "customer_id"
	ColumnType            = "type"
	ColumnAmount          = "amount"
	ColumnThresholds      = "thresholds"
	ColumnOverspendAction = "overspend_action"
	ColumnAllocation      = "allocation"
)

// Limits of one upload: those of the migration template.
const (
	MaxRows  = migration.MaxRows
	MaxBytes = migration.MaxBytes
)

// layout is a kind's columns, in order, of which the first required must
// be in the header.
type layout struct {
	columns  []string
	required int
}

var layouts = map[Kind]layout{
	KindBudgets:          {[]string{ColumnCustomer, ColumnType, ColumnAmount, ColumnThresholds, ColumnOverspendAction}, 3},
	KindCredit:           {[]string{ColumnCustomer, ColumnAllocation}, 2},
	KindOverspendActions: {[]string{ColumnCustomer, ColumnOverspendAction}, 2},
}

var templates = map[Kind]string{
	KindBudgets: strings.Join(layouts[KindBudgets].columns, ",") + "\r\n" +
		"# one customer per row: its account ID as the Partner Center shows it; the budget type MONTHLY or ONE_TIME; the amount (e.g. 10000.00); " +
		"optionally the alert thresholds in percent separated by ; (empty for 50;80;100) and the overspend action NONE, FREEZE_ACCOUNT or " +
		"FREEZE_ACCOUNT_AND_RESOURCES (empty for NONE). Each row sets the customer's whole budget; delete this line\r\n",
	KindCredit: strings.Join(layouts[KindCredit].columns, ",") + "\r\n" +
		"# one customer per row: its account ID as the Partner Center shows it, and the credit it is to have allocated in all (e.g. 5000.00), " +
		"not an amount to add: the difference to its current allocation is allocated or reversed, and 0 reverses it all; delete this line\r\n",
	KindOverspendActions: strings.Join(layouts[KindOverspendActions].columns, ",") + "\r\n" +
		"# one customer per row: its account ID as the Partner Center shows it, and the overspend action of its budget: NONE, FREEZE_ACCOUNT or " +
		"FREEZE_ACCOUNT_AND_RESOURCES. The rest of the budget is kept; a customer without a budget gets one from a BUDGETS file first; delete this line\r\n",
}

// Template is the CSV template of kind: the header and one commented line
// explaining the columns (lines starting with # are skipped). "" for an
// unknown kind.
func Template(kind Kind) string { return templates[kind] }

// Parse judges the syntax of an uploaded file of kind. The whole upload is
// refused (VALIDATION) as migration.ReadRows refuses it — too large, not
// UTF-8 CSV, a header other than the template's (the optional columns of
// BUDGETS may be left out), more than MaxRows rows. Otherwise each row is
// judged on its own, and rejected (VALIDATION, with its row number and a
// reason) when it has another number of columns than the header, a
// customer ID that is empty or not one, a value its kind does not read (see
// Template), or a customer already named in an earlier row. The valid rows
// come back PENDING, in file order; whether their customers may be changed
// is Upload's to judge.
func Parse(kind Kind, r io.Reader) ([]*Row, []RowError, error) {
	l, ok := layouts[kind]
	if !ok {
		return nil, nil, apperr.Invalid("kind", "unknown kind %q", kind)
	}
	width, recs, err := migration.ReadRows(r, l.columns, l.required)
	if err != nil {
		return nil, nil, err
	}
	cols := l.columns[:width]
	var rows []*Row
	var rejected []RowError
	seen := map[int64]int{}
	for _, rec := range recs {
		raw := ""
		if len(rec.Fields) > 0 {
			raw = strings.TrimSpace(rec.Fields[0])
		}
		if len(rec.Fields) != width {
			rejected = append(rejected, invalid(rec.Line, raw, "%s", migration.WidthReason(cols, len(rec.Fields))))
			continue
		}
		f := map[string]string{}
		for i, c := range cols {
			f[c] = strings.TrimSpace(rec.Fields[i])
		}
		row, why := parseRow(kind, f)
		if why != "" {
			rejected = append(rejected, invalid(rec.Line, raw, "%s", why))
			continue
		}
		if first, dup := seen[row.CustomerID]; dup {
			rejected = append(rejected, invalid(rec.Line, raw, "the customer already appears in row %d", first))
			continue
		}
		seen[row.CustomerID] = rec.Line
		row.Line, row.CustomerRef, row.Status = rec.Line, apperr.Clip(raw), RowPending
		rows = append(rows, row)
	}
	return rows, rejected, nil
}

func invalid(line int, raw, format string, args ...any) RowError {
	return RowError{Line: line, CustomerRef: apperr.Clip(raw), Code: apperr.Validation, Reason: fmt.Sprintf(format, args...)}
}

// parseRow reads the fields of one row of kind, or says why it cannot.
func parseRow(kind Kind, f map[string]string) (*Row, string) {
	raw := f[ColumnCustomer]
	id, ok := migration.AccountID(raw)
	if !ok {
		if raw == "" {
			return nil, "the customer ID is empty"
		}
		return nil, fmt.Sprintf("%q is not a customer account ID", apperr.Clip(raw))
	}
	r := &Row{CustomerID: id}
	var why string
	switch kind {
	case KindBudgets:
		if r.BudgetType, why = budgetTypeOf(f[ColumnType]); why != "" {
			return nil, why
		}
		amount, why := amountOf(f[ColumnAmount], "the budget amount")
		if why != "" {
			return nil, why
		}
		if !amount.IsPositive() {
			return nil, "the budget amount must be greater than 0"
		}
		r.Amount = &amount
		if r.Thresholds, why = thresholdsOf(f[ColumnThresholds]); why != "" {
			return nil, why
		}
		if r.OverspendAction, why = actionOf(f[ColumnOverspendAction], false); why != "" {
			return nil, why
		}
	case KindCredit:
		amount, why := amountOf(f[ColumnAllocation], "the allocation")
		if why != "" {
			return nil, why
		}
		if amount.IsNegative() {
			return nil, "the allocation cannot be negative: write the credit the customer is to have in all (0 reverses it all)"
		}
		r.Amount = &amount
	case KindOverspendActions:
		if r.OverspendAction, why = actionOf(f[ColumnOverspendAction], true); why != "" {
			return nil, why
		}
	}
	return r, ""
}

func budgetTypeOf(s string) (models.BudgetType, string) {
	t := models.BudgetType(strings.ToUpper(s))
	switch {
	case s == "":
		return "", "the budget type is empty: write MONTHLY or ONE_TIME"
	case !t.IsValid():
		return "", fmt.Sprintf("%q is not a budget type: write MONTHLY or ONE_TIME", apperr.Clip(s))
	}
	return t, ""
}

// amountOf reads an exact decimal of at most 14 integer and 6 fractional
// digits; what names the column in the reason.
func amountOf(s, what string) (decimal.Decimal, string) {
	if s == "" {
		return decimal.Zero, what + " is empty"
	}
	v, err := models.ParseDecimal(s)
	if err != nil {
		return decimal.Zero, fmt.Sprintf("%q is not an amount: write digits with an optional point and at most 6 decimals (e.g. 5000.00)", apperr.Clip(s))
	}
	return v, ""
}

// thresholdsOf reads "50;80;100": nil for an empty field (the defaults).
func thresholdsOf(s string) (models.Int32s, string) {
	if s == "" {
		return nil, ""
	}
	var out models.Int32s
	for _, p := range strings.Split(s, ";") {
		p = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(p), "%"))
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Sprintf("%q is not a list of thresholds: write percentages separated by ; (e.g. 50;80;100)", apperr.Clip(s))
		}
		if n < guard.MinThreshold || n > guard.MaxThreshold {
			return nil, fmt.Sprintf("each threshold is a percentage from %d to %d, got %d", guard.MinThreshold, guard.MaxThreshold, n)
		}
		if slices.Contains(out, n) {
			return nil, fmt.Sprintf("threshold %d is given twice", n)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out, ""
}

// actionOf reads an overspend action; "" is accepted unless required.
func actionOf(s string, required bool) (models.OverspendAction, string) {
	a := models.OverspendAction(strings.ToUpper(s))
	switch {
	case s == "" && !required:
		return "", ""
	case s == "":
		return "", "the overspend action is empty: write NONE, FREEZE_ACCOUNT or FREEZE_ACCOUNT_AND_RESOURCES"
	case !a.IsValid():
		return "", fmt.Sprintf("%q is not an overspend action: write NONE, FREEZE_ACCOUNT or FREEZE_ACCOUNT_AND_RESOURCES", apperr.Clip(s))
	}
	return a, ""
}
