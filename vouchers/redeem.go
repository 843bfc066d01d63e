package vouchers

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/shopspring/decimal"

	"partnerd/models"
	"partnerd/store"
)

// Usage is an expenditure record the ingestion just stored, as redemption
// needs it.
type Usage struct {
	ExternalID  string
	CustomerID  int64
	OwnerID     int64
	ProductCode string
	BillingMode models.BillingMode
	UsageAt     time.Time
	Month       int
	Actual      decimal.Decimal
}

// LiveCustomersSQL is a condition on an accounts row aliased a that holds
// when the account has a voucher that can still pay: the ingestion's direct
// path loads it with the customer, to collect those customers' records for
// Redeem.
const LiveCustomersSQL = `EXISTS (SELECT 1 FROM vouchers v WHERE v.customer_id = a.id AND v.status IN ('ISSUED','PARTIALLY_USED'))`

// redemptionColumns are the columns Redeem copies into voucher_redemptions.
var redemptionColumns = []string{"voucher_id", "expenditure_id", "customer_id", "owner_id", "issuer_id", "month",
	"product_code", "usage_at", "amount", "redeemed_at"}

// applies reports whether voucher v pays for usage u: its product scope,
// billing modes and validity [effective, expiry) at the usage time.
func (v *Voucher) applies(u *Usage) bool {
	if u.UsageAt.Before(v.EffectiveAt) || !u.UsageAt.Before(v.ExpiresAt) {
		return false
	}
	switch v.BillingModes {
	case ModesPrepaid:
		if u.BillingMode == models.PayPerUse {
			return false
		}
	case ModesPayPerUse:
		if u.BillingMode != models.PayPerUse {
			return false
		}
	}
	switch v.ProductScope {
	case ScopeOnly:
		return slices.Contains(v.ProductCodes, u.ProductCode)
	case ScopeExcept:
		return !slices.Contains(v.ProductCodes, u.ProductCode)
	}
	return true
}

// Redeem lets the customers' live vouchers pay for the records the
// ingestion in tx just stored (usages; records of customers without a live
// voucher may be left out). Each record's actual amount is paid by its
// customer's applicable vouchers (in scope, in validity at its usage time,
// matching its billing mode), earliest expiry first, never more than a
// voucher has left; records are taken in usage time order. It writes one
// redemption row per voucher and record (unique, so a record is never
// redeemed twice by a voucher), lowers the vouchers' remaining amounts
// (PARTIALLY_USED, USED at zero), and adds what vouchers paid to the
// customers' and owners' running totals (voucher_total): the customers'
// consumption for credit and arrears is actual_total − voucher_total.
// Call it after the totals of the records were added and before arrears
// are re-evaluated.
//
// The redemption rows go in with COPY through cp, on the transaction's
// connection (the ingestion's copy transaction).
func Redeem(tx *store.Tx, cp *store.Copier, usages []Usage) error {
	if len(usages) == 0 {
		return nil
	}
	custs := make([]int64, 0, 8)
	for i := range usages {
		custs = append(custs, usages[i].CustomerID)
	}
	slices.Sort(custs)
	custs = slices.Compact(custs)
	var live []*Voucher
	if err := tx.DB.Raw(`SELECT * FROM vouchers WHERE customer_id = ANY(?::bigint[]) AND status IN ('ISSUED','PARTIALLY_USED')
		ORDER BY id FOR UPDATE`, store.Int64Array(custs)).Scan(&live).Error; err != nil {
		return fmt.Errorf("lock vouchers: %w", err)
	}
	if len(live) == 0 {
		return nil
	}
	byCustomer := map[int64][]*Voucher{}
	for _, v := range live {
		byCustomer[v.CustomerID] = append(byCustomer[v.CustomerID], v)
	}
	for _, list := range byCustomer {
		sort.Slice(list, func(i, j int) bool {
			if !list[i].ExpiresAt.Equal(list[j].ExpiresAt) {
				return list[i].ExpiresAt.Before(list[j].ExpiresAt)
			}
			return list[i].ID < list[j].ID
		})
	}
	var mine []*Usage
	var extIDs []string
	for i := range usages {
		if u := &usages[i]; byCustomer[u.CustomerID] != nil && u.Actual.IsPositive() {
			mine = append(mine, u)
			extIDs = append(extIDs, u.ExternalID)
		}
	}
	if len(mine) == 0 {
		return nil
	}
	var stored []struct {
		ID         int64
		ExternalID string
	}
	if err := tx.DB.Raw(`SELECT id, external_id FROM expenditures WHERE external_id = ANY(?::text[])`, store.TextArray(extIDs)).Scan(&stored).Error; err != nil {
		return fmt.Errorf("find stored records: %w", err)
	}
	recID := make(map[string]int64, len(stored))
	for _, s := range stored {
		recID[s.ExternalID] = s.ID
	}
	sort.SliceStable(mine, func(i, j int) bool {
		a, b := mine[i], mine[j]
		if a.CustomerID != b.CustomerID {
			return a.CustomerID < b.CustomerID
		}
		if !a.UsageAt.Equal(b.UsageAt) {
			return a.UsageAt.Before(b.UsageAt)
		}
		return a.ExternalID < b.ExternalID
	})

	type key struct {
		id    int64
		month int
	}
	var (
		rows      [][]any
		custPaid  = map[key]decimal.Decimal{}
		ownerPaid = map[key]decimal.Decimal{}
		touched   = map[int64]*Voucher{}
		now       = tx.Now()
	)
	for _, u := range mine {
		id, ok := recID[u.ExternalID]
		if !ok {
			return fmt.Errorf("redeem vouchers: record %q was not stored", u.ExternalID)
		}
		due := u.Actual
		for _, v := range byCustomer[u.CustomerID] {
			if !due.IsPositive() {
				break
			}
			if !v.Remaining.IsPositive() || !v.applies(u) {
				continue
			}
			pay := decimal.Min(due, v.Remaining)
			due = due.Sub(pay)
			v.Remaining = v.Remaining.Sub(pay)
			touched[v.ID] = v
			rows = append(rows, []any{v.ID, id, u.CustomerID, u.OwnerID, v.IssuerID, int32(u.Month), u.ProductCode, u.UsageAt,
				pgtype.Numeric{Int: pay.Coefficient(), Exp: pay.Exponent(), Valid: true}, now})
			custPaid[key{u.CustomerID, u.Month}] = custPaid[key{u.CustomerID, u.Month}].Add(pay)
			ownerPaid[key{u.OwnerID, u.Month}] = ownerPaid[key{u.OwnerID, u.Month}].Add(pay)
		}
	}
	if len(rows) == 0 {
		return nil
	}
	if _, err := cp.CopyFrom(tx.Context(), pgx.Identifier{"voucher_redemptions"}, redemptionColumns, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("record voucher redemptions: %w", err)
	}
	var ids []int64
	var remaining, statuses []string
	for id, v := range touched {
		v.Status = StatusPartiallyUsed
		if !v.Remaining.IsPositive() {
			v.Status = StatusUsed
		}
		ids, remaining, statuses = append(ids, id), append(remaining, v.Remaining.String()), append(statuses, string(v.Status))
	}
	if err := tx.DB.Exec(`UPDATE vouchers v SET remaining = u.r, status = u.s, closed_at = CASE WHEN u.s = 'USED' THEN ?::timestamptz END
		FROM unnest(?::bigint[], ?::numeric[], ?::text[]) AS u(id, r, s) WHERE v.id = u.id`,
		now, store.Int64Array(ids), store.TextArray(remaining), store.TextArray(statuses)).Error; err != nil {
		return fmt.Errorf("update vouchers: %w", err)
	}
	for _, t := range []struct {
		table, col string
		paid       map[key]decimal.Decimal
	}{{"spend_totals", "customer_id", custPaid}, {"owner_spend_totals", "owner_id", ownerPaid}} {
		keys := make([]key, 0, len(t.paid))
		for k := range t.paid {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if keys[i].id != keys[j].id {
				return keys[i].id < keys[j].id
			}
			return keys[i].month < keys[j].month
		})
		var kIDs []int64
		var kMonths []int32
		var kPaid []string
		for _, k := range keys {
			kIDs, kMonths, kPaid = append(kIDs, k.id), append(kMonths, int32(k.month)), append(kPaid, t.paid[k].String())
		}
		if err := tx.DB.Exec(`UPDATE `+t.table+` t SET voucher_total = t.voucher_total + u.p
			FROM unnest(?::bigint[], ?::int[], ?::numeric[]) AS u(id, m, p) WHERE t.`+t.col+` = u.id AND t.month = u.m`,
			store.Int64Array(kIDs), int32Array(kMonths), store.TextArray(kPaid)).Error; err != nil {
			return fmt.Errorf("add voucher payments to %s: %w", t.table, err)
		}
	}
	return nil
}

// int32Array renders ns as a PostgreSQL array literal.
func int32Array(ns []int32) string {
	ids := make([]int64, len(ns))
	for i, n := range ns {
		ids[i] = int64(n)
	}
	return store.Int64Array(ids)
}
