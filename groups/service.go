// Package groups holds customers' billing groups (one administrator and
// members) and savings-plan shared units (DOMAIN.md §1): their membership
// and its changes, nothing more — they exist here mainly because they block
// migrations (§6).
//
// Rules: the members of a group or unit are CUSTOMER accounts of one partner
// (siblings), in the caller's scope; the caller manages customers (ADMIN or
// OPERATOR) of that partner or of a partner or platform above it. A customer
// is in at most one group and at most one unit (CONFLICT otherwise). A
// group's administrator is one of its members and cannot be removed (delete
// the group instead); a unit keeps at least one member.
package groups

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/store"
)

// Kind tells billing groups from shared units; both share the rules of
// this package.
type Kind string

// The kinds of customer sets.
const (
	KindGroup Kind = "GROUP"
	KindUnit  Kind = "SHARING_UNIT"
)

// tables is where a kind lives.
type tables struct {
	sets, members, fk, what string
}

func (k Kind) tables() tables {
	if k == KindUnit {
		return tables{sets: "sharing_units", members: "sharing_unit_members", fk: "unit_id", what: "savings-plan shared unit"}
	}
	return tables{sets: "customer_groups", members: "customer_group_members", fk: "group_id", what: "billing group"}
}

// MaxMembers bounds one group or unit.
const MaxMembers = 500

// Set is a billing group or a shared unit. AdministratorID is 0 for a unit.
type Set struct {
	ID              int64
	Kind            Kind
	PartnerID       int64
	Name            string
	AdministratorID int64
	MemberIDs       []int64
	CreatedAt       time.Time
}

// Membership is where one customer belongs.
type Membership struct {
	GroupID int64
	Role    models.GroupRole
	UnitID  int64
}

// Service offers the operations on groups and units.
type Service struct{ st *store.Store }

// New returns the groups service on st.
func New(st *store.Store) *Service { return &Service{st: st} }

// Create makes a group (administratorID set, among or besides memberIDs) or
// a unit (administratorID 0) of the given customers.
func (s *Service) Create(ctx context.Context, kind Kind, name string, administratorID int64, memberIDs []int64) (*Set, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	name = strings.TrimSpace(name)
	if name == "" || len([]rune(name)) > 100 {
		return nil, apperr.Invalid("name", "give 1 to 100 characters")
	}
	ids := slices.Clone(memberIDs)
	if kind == KindGroup {
		if administratorID == 0 {
			return nil, apperr.Invalid("administratorId", "is required")
		}
		ids = append(ids, administratorID)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) == 0 {
		return nil, apperr.Invalid("memberIds", "give at least one member")
	}
	if len(ids) > MaxMembers {
		return nil, apperr.Invalid("memberIds", "at most %d members", MaxMembers)
	}
	var out *Set
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		partner, err := lockMembers(tx, sc, ids, 0)
		if err != nil {
			return err
		}
		t := kind.tables()
		set := &Set{Kind: kind, PartnerID: partner, Name: name, AdministratorID: administratorID, MemberIDs: ids, CreatedAt: tx.Now()}
		if kind == KindGroup {
			err = tx.DB.Raw(`INSERT INTO customer_groups (partner_id, name, administrator_id, created_at) VALUES (?, ?, ?, ?) RETURNING id`,
				partner, name, administratorID, set.CreatedAt).Scan(&set.ID).Error
		} else {
			err = tx.DB.Raw(`INSERT INTO sharing_units (partner_id, name, created_at) VALUES (?, ?, ?) RETURNING id`,
				partner, name, set.CreatedAt).Scan(&set.ID).Error
		}
		if err != nil {
			return fmt.Errorf("create %s: %w", t.what, err)
		}
		for _, id := range ids {
			if err := s.insertMember(tx, set, id); err != nil {
				return err
			}
		}
		out = set
		if err := tx.Audit(kindAction(kind, "create"), partner, nil, summary(set)); err != nil {
			return err
		}
		return emitChanges(tx, set, notify.GroupCreated, ids)
	})
	return out, err
}

// AddMember adds a customer to a group or unit.
func (s *Service) AddMember(ctx context.Context, kind Kind, setID, accountID int64) (*Set, error) {
	return s.change(ctx, kind, setID, func(tx *store.Tx, sc accounts.Scope, set *Set) error {
		if len(set.MemberIDs) >= MaxMembers {
			return apperr.Preconditionf("the %s has %d members already, the most it may have", kind.tables().what, MaxMembers)
		}
		if slices.Contains(set.MemberIDs, accountID) {
			return nil
		}
		if _, err := lockMembers(tx, sc, []int64{accountID}, set.PartnerID); err != nil {
			return err
		}
		if err := s.insertMember(tx, set, accountID); err != nil {
			return err
		}
		set.MemberIDs = append(set.MemberIDs, accountID)
		slices.Sort(set.MemberIDs)
		if err := tx.Audit(kindAction(kind, "add_member"), accountID, nil, summary(set)); err != nil {
			return err
		}
		return emitChanges(tx, set, notify.GroupMemberAdded, []int64{accountID})
	})
}

// RemoveMember takes a customer out of a group or unit. A group's
// administrator, and a unit's last member, cannot be removed
// (PRECONDITION_FAILED: delete it instead).
func (s *Service) RemoveMember(ctx context.Context, kind Kind, setID, accountID int64) (*Set, error) {
	return s.change(ctx, kind, setID, func(tx *store.Tx, sc accounts.Scope, set *Set) error {
		if !slices.Contains(set.MemberIDs, accountID) {
			return apperr.Invalid("accountId", "the account is not a member of this %s", kind.tables().what)
		}
		if accountID == set.AdministratorID {
			return apperr.Preconditionf("the administrator cannot leave the group: delete the group instead")
		}
		if len(set.MemberIDs) == 1 {
			return apperr.Preconditionf("a shared unit keeps at least one member: delete it instead")
		}
		t := kind.tables()
		if err := tx.DB.Exec(`DELETE FROM `+t.members+` WHERE account_id = ? AND `+t.fk+` = ?`, accountID, set.ID).Error; err != nil {
			return fmt.Errorf("remove member: %w", err)
		}
		set.MemberIDs = slices.DeleteFunc(set.MemberIDs, func(id int64) bool { return id == accountID })
		if err := tx.Audit(kindAction(kind, "remove_member"), accountID, nil, summary(set)); err != nil {
			return err
		}
		return emitChanges(tx, set, notify.GroupMemberRemoved, []int64{accountID})
	})
}

// Delete removes a group or unit and its memberships.
func (s *Service) Delete(ctx context.Context, kind Kind, setID int64) error {
	_, err := s.change(ctx, kind, setID, func(tx *store.Tx, sc accounts.Scope, set *Set) error {
		t := kind.tables()
		if err := tx.DB.Exec(`DELETE FROM `+t.sets+` WHERE id = ?`, set.ID).Error; err != nil {
			return fmt.Errorf("delete %s: %w", t.what, err)
		}
		if err := tx.Audit(kindAction(kind, "delete"), set.PartnerID, summary(set), nil); err != nil {
			return err
		}
		return emitChanges(tx, set, notify.GroupDeleted, set.MemberIDs)
	})
	return err
}

// change runs fn on the set setID, locked, after the scope and permission
// checks (NOT_FOUND outside the caller's scope).
func (s *Service) change(ctx context.Context, kind Kind, setID int64, fn func(tx *store.Tx, sc accounts.Scope, set *Set) error) (*Set, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var out *Set
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		set, err := lockSet(tx, sc, kind, setID)
		if err != nil {
			return err
		}
		if err := sc.Require(accounts.PermManageCustomers); err != nil {
			return err
		}
		out = set
		return fn(tx, sc, set)
	})
	return out, err
}

// insertMember adds id to set, mapping "already in one" to CONFLICT.
func (s *Service) insertMember(tx *store.Tx, set *Set, id int64) error {
	t := set.Kind.tables()
	role := ""
	if set.Kind == KindGroup {
		role = string(models.GroupMember)
		if id == set.AdministratorID {
			role = string(models.GroupAdministrator)
		}
	}
	var other int64
	if err := tx.DB.Raw(`SELECT `+t.fk+` FROM `+t.members+` WHERE account_id = ?`, id).Scan(&other).Error; err != nil {
		return fmt.Errorf("membership of %d: %w", id, err)
	}
	if other != 0 {
		return apperr.Conflictf("account %d is already in a %s; a customer is in at most one", id, t.what)
	}
	var err error
	if set.Kind == KindGroup {
		err = tx.DB.Exec(`INSERT INTO customer_group_members (account_id, group_id, role, added_at) VALUES (?, ?, ?, ?)`, id, set.ID, role, tx.Now()).Error
	} else {
		err = tx.DB.Exec(`INSERT INTO sharing_unit_members (account_id, unit_id, added_at) VALUES (?, ?, ?)`, id, set.ID, tx.Now()).Error
	}
	if store.PgCode(err) == "23505" {
		return apperr.Conflictf("account %d is already in a %s; a customer is in at most one", id, t.what)
	}
	if err != nil {
		return fmt.Errorf("add member %d: %w", id, err)
	}
	return nil
}

// lockMembers locks the accounts ids (in id order) through scope sc and
// checks they are customers of one partner — partner, when not 0 — and
// returns that partner. An id outside the scope is NOT_FOUND.
func lockMembers(tx *store.Tx, sc accounts.Scope, ids []int64, partner int64) (int64, error) {
	if err := sc.Require(accounts.PermManageCustomers); err != nil {
		return 0, err
	}
	for _, id := range ids {
		a, err := accounts.LockInScope(tx, sc, id)
		if err != nil {
			return 0, err
		}
		if a.Kind != models.KindCustomer {
			return 0, apperr.Invalid("memberIds", "account %d is a %s: groups and shared units are made of customers", id, a.Kind)
		}
		if p := sc.Principal(); !p.System && p.AccountID == a.ID {
			return 0, apperr.Forbiddenf("groups and shared units are managed by the customers' partner")
		}
		if partner == 0 {
			partner = *a.ParentID
		} else if *a.ParentID != partner {
			return 0, apperr.Invalid("memberIds", "account %d is not a customer of the same partner: the members of one must be siblings", id)
		}
	}
	return partner, nil
}

// lockSet locks a set and loads its members; NOT_FOUND unless its partner
// is in the caller's scope.
func lockSet(tx *store.Tx, sc accounts.Scope, kind Kind, id int64) (*Set, error) {
	t := kind.tables()
	q, args := sc.SQL("p.path")
	var row struct {
		ID              int64
		PartnerID       int64
		Name            string
		AdministratorID int64
		CreatedAt       time.Time
	}
	admin := "0"
	if kind == KindGroup {
		admin = "s.administrator_id"
	}
	err := tx.DB.Raw(`SELECT s.id, s.partner_id, s.name, `+admin+` AS administrator_id, s.created_at FROM `+t.sets+` s
		JOIN accounts p ON p.id = s.partner_id WHERE s.id = ? AND `+q+` FOR UPDATE OF s`, append([]any{id}, args...)...).Scan(&row).Error
	if err != nil {
		return nil, fmt.Errorf("lock %s %d: %w", t.what, id, err)
	}
	if row.ID == 0 {
		return nil, accounts.NotFound(t.what)
	}
	set := &Set{ID: row.ID, Kind: kind, PartnerID: row.PartnerID, Name: row.Name, AdministratorID: row.AdministratorID, CreatedAt: row.CreatedAt}
	if err := tx.DB.Raw(`SELECT account_id FROM `+t.members+` WHERE `+t.fk+` = ? ORDER BY account_id`, id).Scan(&set.MemberIDs).Error; err != nil {
		return nil, fmt.Errorf("members of %s %d: %w", t.what, id, err)
	}
	return set, nil
}

func kindAction(k Kind, verb string) string {
	if k == KindUnit {
		return "sharing_unit." + verb
	}
	return "customer_group." + verb
}

func summary(s *Set) map[string]any {
	m := map[string]any{"id": s.ID, "name": s.Name, "partnerId": s.PartnerID, "members": s.MemberIDs}
	if s.Kind == KindGroup {
		m["administratorId"] = s.AdministratorID
	}
	return m
}

// emitChanges notifies each concerned member (and, through their account
// topic, live subscribers) of a change of set.
func emitChanges(tx *store.Tx, set *Set, change string, members []int64) error {
	evs := make([]store.Event, 0, 2*len(members))
	for _, id := range members {
		evs = append(evs, notify.GroupChanged{AccountID: id, PartnerID: set.PartnerID, Kind: string(set.Kind), Name: set.Name, Change: change},
			accounts.AccountChanged{AccountID: id, Change: "group"})
	}
	return tx.Emit(evs...)
}

// Group is a billing group as the API shows it.
type Group struct{ Set }

// Unit is a savings-plan shared unit as the API shows it.
type Unit struct{ Set }

// IsNode marks Group as a Node.
func (Group) IsNode() {}

// IsNode marks Unit as a Node.
func (Unit) IsNode() {}
