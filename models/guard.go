package models

import (
	"database/sql/driver"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// BudgetType is how a budget's period runs (DOMAIN.md §4).
type BudgetType string

// The budget types.
const (
	// BudgetMonthly restarts at the start of each Beijing-time month.
	BudgetMonthly BudgetType = "MONTHLY"
	// BudgetOneTime counts from when it was set and never restarts.
	BudgetOneTime BudgetType = "ONE_TIME"
)

// IsValid reports whether t is a known budget type.
func (t BudgetType) IsValid() bool { return t == BudgetMonthly || t == BudgetOneTime }

// OverspendAction is what the system does when a customer's spend reaches
// its budget.
type OverspendAction string

// The overspend actions.
const (
	OverspendNone                OverspendAction = "NONE"
	OverspendFreeze              OverspendAction = "FREEZE_ACCOUNT"
	OverspendFreezeWithResources OverspendAction = "FREEZE_ACCOUNT_AND_RESOURCES"
)

// IsValid reports whether a is a known action.
func (a OverspendAction) IsValid() bool {
	return a == OverspendNone || a == OverspendFreeze || a == OverspendFreezeWithResources
}

// FreezeMode is what a freeze stops: purchases only, or the resources too.
type FreezeMode string

// The freeze modes.
const (
	FreezeAccount             FreezeMode = "ACCOUNT"
	FreezeAccountAndResources FreezeMode = "ACCOUNT_AND_RESOURCES"
)

// IsValid reports whether m is a known mode.
func (m FreezeMode) IsValid() bool { return m == FreezeAccount || m == FreezeAccountAndResources }

// Status is the account status a freeze of mode m leaves.
func (m FreezeMode) Status() AccountStatus {
	if m == FreezeAccountAndResources {
		return StatusFrozenWithResources
	}
	return StatusFrozen
}

// Budget is a customer's budget as stored.
type Budget struct {
	ID              int64 `gorm:"primaryKey"`
	CustomerID      int64
	Type            BudgetType
	Amount          decimal.Decimal
	Thresholds      Int32s `gorm:"type:int[]"`
	OverspendAction OverspendAction
	StartedAt       time.Time
	StartMonth      int
	OverridePeriod  *int
	OverrideAmount  *decimal.Decimal
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// TableName is the budgets table.
func (Budget) TableName() string { return "budgets" }

// ResourceStatus is a cloud resource's state, as far as freezes need it.
type ResourceStatus string

// The resource statuses.
const (
	ResourceRunning  ResourceStatus = "RUNNING"
	ResourceStopped  ResourceStatus = "STOPPED"
	ResourceReleased ResourceStatus = "RELEASED"
)

// Resource is one cloud resource of a customer.
type Resource struct {
	ID              int64 `gorm:"primaryKey"`
	CustomerID      int64
	ProductCode     string
	ExternalID      string
	Status          ResourceStatus
	StoppedByFreeze bool
	CreatedAt       time.Time
	UpdatedAt       time.Time
	ReleasedAt      *time.Time
}

// TableName is the resources table.
func (Resource) TableName() string { return "resources" }

// Int32s is a PostgreSQL int[] column ("{50,80,100}").
type Int32s []int

// Value implements driver.Valuer.
func (a Int32s) Value() (driver.Value, error) {
	parts := make([]string, len(a))
	for i, v := range a {
		parts[i] = strconv.Itoa(v)
	}
	return "{" + strings.Join(parts, ",") + "}", nil
}

// Scan implements sql.Scanner.
func (a *Int32s) Scan(src any) error {
	var s string
	switch v := src.(type) {
	case nil:
		*a = nil
		return nil
	case string:
		s = v
	case []byte:
		s = string(v)
	default:
		return fmt.Errorf("scan int[]: unexpected %T", src)
	}
	s = strings.Trim(s, "{}")
	out := Int32s{}
	if s != "" {
		for _, p := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil {
				return fmt.Errorf("scan int[] %q: %w", s, err)
			}
			out = append(out, n)
		}
	}
	*a = out
	return nil
}

// GroupRole is a customer's place in a billing group.
type GroupRole string

// The group roles.
const (
	GroupNone          GroupRole = "NONE"
	GroupAdministrator GroupRole = "ADMINISTRATOR"
	GroupMember        GroupRole = "MEMBER"
)
