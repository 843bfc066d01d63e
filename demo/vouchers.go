package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/models"
	"partnerd/spend"
	"partnerd/vouchers"
)

// demoVouchers gives the demo its vouchers: the platform grants Aurora
// 20,000 of voucher quota for 180 days; Aurora passes 5,000 to Beacon with
// an approval threshold of 1,000 and issues its welcome voucher (200, all
// products) to Nimbus Games; Beacon issues its ECS starter voucher (300,
// ecs.g7.large pay-per-use) to Harbor Logistics and Kite Analytics, and
// asks Aurora to approve a loyalty issue (2 × 800) that waits. Then an hour
// of fresh usage is ingested, which the vouchers pay for in part.
func demoVouchers(ctx context.Context, d Services, customers []*models.Account, sum *Summary) error {
	dec := decimal.RequireFromString
	byName := map[string]*models.Account{}
	for _, c := range customers {
		byName[c.Name] = c
	}
	var aurora, beacon int64
	if err := d.Accounts.Store().DB.WithContext(ctx).Raw(`SELECT id FROM accounts WHERE name = 'Aurora Cloud Distribution'`).Scan(&aurora).Error; err != nil {
		return fmt.Errorf("demo vouchers: %w", err)
	}
	if err := d.Accounts.Store().DB.WithContext(ctx).Raw(`SELECT id FROM accounts WHERE name = 'Beacon Systems'`).Scan(&beacon).Error; err != nil {
		return fmt.Errorf("demo vouchers: %w", err)
	}
	now := d.Accounts.Store().Now()
	if _, err := d.Vouchers.Grant(ctx, aurora, dec("20000"), now.Add(180*24*time.Hour)); err != nil {
		return fmt.Errorf("demo voucher quota: %w", err)
	}
	asAurora, err := actAs(ctx, d, "finance@aurora.example")
	if err != nil {
		return err
	}
	if _, err := d.Vouchers.Allocate(asAurora, beacon, dec("5000")); err != nil {
		return fmt.Errorf("demo voucher allocation: %w", err)
	}
	threshold := dec("1000")
	if _, err := d.Vouchers.SetApprovalThreshold(asAurora, beacon, &threshold); err != nil {
		return fmt.Errorf("demo voucher threshold: %w", err)
	}
	days90, days60, days30 := 90, 60, 30
	welcome, err := d.Vouchers.CreateTemplate(asAurora, aurora, vouchers.TemplateInput{Name: "Aurora welcome voucher", FaceValue: dec("200"),
		ProductScope: vouchers.ScopeAll, BillingModes: vouchers.ModesAll, ValidDays: &days90, PerCustomerLimit: 1,
		Reason: "Welcome offer for direct customers"})
	if err != nil {
		return fmt.Errorf("demo voucher template: %w", err)
	}
	if _, err := d.Vouchers.Issue(asAurora, welcome.ID, []int64{byName["Nimbus Games"].ID}); err != nil {
		return fmt.Errorf("demo vouchers: %w", err)
	}
	asBeacon, err := actAs(ctx, d, "admin@beacon.example")
	if err != nil {
		return err
	}
	starter, err := d.Vouchers.CreateTemplate(asBeacon, beacon, vouchers.TemplateInput{Name: "Beacon ECS starter", FaceValue: dec("300"),
		ProductScope: vouchers.ScopeOnly, ProductCodes: []string{"ecs.g7.large"}, BillingModes: vouchers.ModesPayPerUse, ValidDays: &days60,
		PerCustomerLimit: 1, Reason: "Move more workloads to ECS"})
	if err != nil {
		return fmt.Errorf("demo voucher template: %w", err)
	}
	if _, err := d.Vouchers.Issue(asBeacon, starter.ID, []int64{byName["Harbor Logistics"].ID, byName["Kite Analytics"].ID}); err != nil {
		return fmt.Errorf("demo vouchers: %w", err)
	}
	loyalty, err := d.Vouchers.CreateTemplate(asBeacon, beacon, vouchers.TemplateInput{Name: "Beacon loyalty", FaceValue: dec("800"),
		ProductScope: vouchers.ScopeAll, BillingModes: vouchers.ModesAll, ValidDays: &days30, PerCustomerLimit: 1, Reason: "Renewal of annual contracts"})
	if err != nil {
		return fmt.Errorf("demo voucher template: %w", err)
	}
	if _, err := d.Vouchers.Issue(asBeacon, loyalty.ID, []int64{byName["Harbor Logistics"].ID, byName["Kite Analytics"].ID}); err != nil {
		return fmt.Errorf("demo vouchers: %w", err)
	}
	var recs []spend.Record
	usage := d.Accounts.Store().Now() // after the issue: vouchers pay usage from their issue on
	for name, amount := range map[string]string{"Harbor Logistics": "120.00", "Kite Analytics": "86.40", "Nimbus Games": "64.25"} {
		recs = append(recs, spend.Record{ExternalID: fmt.Sprintf("demo-voucher-%d", byName[name].ID), CustomerID: byName[name].ID,
			ProductCode: "ecs.g7.large", Region: "cn-hangzhou", BillingMode: models.PayPerUse, UsageAt: usage,
			List: dec(amount).Mul(dec("1.2")), Actual: dec(amount)})
	}
	res, err := d.Spend.Ingest(ctx, spend.SliceSource(recs))
	if err != nil {
		return fmt.Errorf("demo voucher usage: %w", err)
	}
	sum.Expenditures += res.Accepted
	return nil
}
