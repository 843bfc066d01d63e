package accounts

import (
	"partnerd/apperr"
	"partnerd/models"
)

// Permission is something a role allows (DOMAIN.md §2).
type Permission string

// The permissions and the roles that grant them. ADMIN grants everything;
// REVIEWER only counts on the PLATFORM account.
const (
	// PermRead: read what is in scope. Every role.
	PermRead Permission = "read"
	// PermManageCustomers: create and edit accounts under one's own, tags. ADMIN, OPERATOR.
	PermManageCustomers Permission = "manage-customers"
	// PermManageUsers: create users and their tokens, revoke tokens. ADMIN.
	PermManageUsers Permission = "manage-users"
	// PermFinance: credit, budgets, bills. ADMIN, FINANCE.
	PermFinance Permission = "finance"
	// PermOperate: freezes and migrations. ADMIN, OPERATOR.
	PermOperate Permission = "operate"
	// PermReview: the platform's internal review. REVIEWER of the PLATFORM.
	PermReview Permission = "review"
	// PermAudit: read the audit log. ADMIN.
	PermAudit Permission = "audit"
)

var grants = map[Permission][]models.Role{
	PermRead:            {models.RoleAdmin, models.RoleFinance, models.RoleOperator, models.RoleViewer, models.RoleReviewer},
	PermManageCustomers: {models.RoleAdmin, models.RoleOperator},
	PermManageUsers:     {models.RoleAdmin},
	PermFinance:         {models.RoleAdmin, models.RoleFinance},
	PermOperate:         {models.RoleAdmin, models.RoleOperator},
	PermReview:          {models.RoleReviewer},
	PermAudit:           {models.RoleAdmin},
}

// Can reports whether the principal holds a role that grants perm.
func (p *Principal) Can(perm Permission) bool {
	if p.System {
		return true
	}
	if perm == PermReview {
		return p.AccountKind == models.KindPlatform && p.Roles.Has(models.RoleReviewer)
	}
	for _, r := range grants[perm] {
		if p.Roles.Has(r) {
			return true
		}
	}
	return false
}

// Require fails with FORBIDDEN unless the scope's principal may do perm. Call
// it after the target was found in scope, so a caller never learns that an
// object outside its scope exists.
func (s Scope) Require(perm Permission) error {
	if s.principal == nil {
		return ErrUnauthenticated
	}
	if !s.principal.Can(perm) {
		return apperr.Forbiddenf("your roles do not allow this (%s)", perm)
	}
	return nil
}
