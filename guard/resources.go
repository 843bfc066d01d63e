package guard

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"gorm.io/gorm"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/models"
	"partnerd/store"
)

// RegisterResource records a resource the cloud console created for a
// customer (or personal account): RUNNING, identified by the console's
// externalId, unique per account. Only the platform's users (ADMIN or
// OPERATOR, the console's integration) register; others get FORBIDDEN, or
// NOT_FOUND for an account outside their scope. A frozen account cannot get
// new resources (PRECONDITION_FAILED). Registering the same externalId again
// returns the resource as it is; with another product code it is a CONFLICT.
func (s *Service) RegisterResource(ctx context.Context, customerID int64, productCode, externalID string) (*models.Resource, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	productCode, externalID = strings.TrimSpace(productCode), strings.TrimSpace(externalID)
	if productCode == "" || len(productCode) > 100 {
		return nil, apperr.Invalid("productCode", "give 1 to 100 characters")
	}
	if externalID == "" || len(externalID) > 200 {
		return nil, apperr.Invalid("externalId", "give 1 to 200 characters")
	}
	var out *models.Resource
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		a, err := accounts.LockInScope(tx, sc, customerID)
		if err != nil {
			return err
		}
		if !sc.Principal().IsPlatform() {
			return apperr.Forbiddenf("resources are registered by the cloud console (a platform user)")
		}
		if err := sc.Require(accounts.PermOperate); err != nil {
			return err
		}
		if a.Kind != models.KindCustomer && a.Kind != models.KindPersonal {
			return apperr.Invalid("customerId", "resources belong to customers and personal accounts, not to a %s", a.Kind)
		}
		var existing models.Resource
		err = tx.DB.Where("customer_id = ? AND external_id = ?", a.ID, externalID).Take(&existing).Error
		switch {
		case err == nil:
			if existing.ProductCode != productCode {
				return apperr.Conflictf("resource %q is registered with product %s", externalID, existing.ProductCode)
			}
			out = &existing
			return nil
		case !errors.Is(err, gorm.ErrRecordNotFound):
			return fmt.Errorf("look up resource: %w", err)
		}
		if a.Status != models.StatusActive {
			return apperr.Preconditionf("the account is %s: it cannot get new resources", a.Status)
		}
		now := tx.Now()
		r := &models.Resource{CustomerID: a.ID, ProductCode: productCode, ExternalID: externalID,
			Status: models.ResourceRunning, CreatedAt: now, UpdatedAt: now}
		if err := tx.DB.Create(r).Error; err != nil {
			return fmt.Errorf("register resource: %w", err)
		}
		out = r
		return tx.Audit("resource.register", a.ID, nil, map[string]any{"id": r.ID, "productCode": productCode, "externalId": externalID})
	})
	return out, err
}

// ResourcesPage lists an account's resources in the caller's scope, oldest
// first (keyset on id), optionally of one status; total counts them all.
func (s *Service) ResourcesPage(ctx context.Context, accountID int64, status *models.ResourceStatus, first int, afterID int64) (page []*models.Resource, more bool, total int64, err error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, false, 0, err
	}
	db := s.st.DB.WithContext(ctx)
	if _, err := accounts.GetInScope(db, sc, accountID); err != nil {
		return nil, false, 0, err
	}
	q := db.Model(&models.Resource{}).Where("customer_id = ?", accountID)
	if status != nil {
		q = q.Where("status = ?", *status)
	}
	if err := q.Count(&total).Error; err != nil {
		return nil, false, 0, fmt.Errorf("count resources: %w", err)
	}
	if err := q.Where("id > ?", afterID).Order("id").Limit(first + 1).Find(&page).Error; err != nil {
		return nil, false, 0, fmt.Errorf("list resources: %w", err)
	}
	if len(page) > first {
		return page[:first], true, total, nil
	}
	return page, false, total, nil
}

// Resource returns one resource whose account is in the caller's scope
// (else NOT_FOUND).
func (s *Service) Resource(ctx context.Context, id int64) (*models.Resource, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	q, args := sc.SQL("a.path")
	var r models.Resource
	if err := store.Select(s.st.DB.WithContext(ctx), &r, `SELECT r.* FROM resources r JOIN accounts a ON a.id = r.customer_id
		WHERE r.id = ? AND `+q, append([]any{id}, args...)...); err != nil {
		return nil, fmt.Errorf("load resource %d: %w", id, err)
	}
	if r.ID == 0 {
		return nil, accounts.NotFound("resource")
	}
	return &r, nil
}
