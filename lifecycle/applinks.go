package lifecycle

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"time"

	"gorm.io/gorm"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/guard"
	"partnerd/ids"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/store"
)

// Application links (issue 14 point 2). Besides inviting by email, a
// partner hands out a link; a PERSONAL account applies through it and the
// partner approves or rejects the application. The rules:
//
//   - A link belongs to one partner (a DISTRIBUTOR or RESELLER) and says
//     what an approved applicant becomes: its CUSTOMER, or — for a
//     distributor only — its second-level RESELLER. It is valid until its
//     expiry (at most MaxLinkTTL ahead) and, when it has a usage limit, for
//     that many applications. Every application counts a use, whatever its
//     outcome; a revoked link takes no more.
//   - The partner's ADMIN or OPERATOR, or one of a partner above it (the
//     platform, a distributor for its second-level reseller), manages its
//     links and decides its applications: the scope check of accounts.
//   - The applicant is a PERSONAL account, applying by its own ADMIN. The
//     refusals of an invitation apply, at the application and again at the
//     approval: an account that is no longer personal (bound to a partner),
//     frozen or in arrears cannot be associated (PRECONDITION_FAILED). An
//     account has at most one PENDING application per partner.
//   - Approval makes the account the partner's CUSTOMER exactly as an
//     accepted invitation does (FROZEN with reason NEW_CUSTOMER until the
//     partner sets a budget and unfreezes it; parent history appended, so
//     usage before now stays with its former owner), or its RESELLER
//     (ACTIVE: freezes and purchase guards are for accounts that buy; it
//     must have no unreleased resources, which a reseller could not be
//     billed for). The account's other pending applications are then
//     WITHDRAWN. A rejection needs a reason; the applicant may withdraw a
//     pending application.
//   - Every change is audited; an application tells the partner's operators
//     (applink.applied), a decision the applicant (applink.decided), in the
//     transaction of the change.

// MaxLinkTTL is the longest an application link may stay valid.
const MaxLinkTTL = 90 * 24 * time.Hour

// MaxLinkUses bounds a link's usage limit.
const MaxLinkUses = 100000

// linkTokenPrefix starts every application link token.
const linkTokenPrefix = "al_"

// The type names inside the global IDs of links and applications.
const (
	TypeApplicationLink = "ApplicationLink"
	TypeLinkApplication = "LinkApplication"
)

// LinkKind is what an approved applicant becomes under the link's partner.
type LinkKind string

// The kinds of application links.
const (
	LinkCustomer LinkKind = "CUSTOMER"
	LinkReseller LinkKind = "RESELLER"
)

// LinkStatus is where an application link stands, computed as of a read.
type LinkStatus string

// Link statuses: UNUSED until its first application and USED after it; past
// its expiry a link that could still have taken applications reads EXPIRED
// (one used up stays USED); a revoked link reads REVOKED.
const (
	LinkUnused  LinkStatus = "UNUSED"
	LinkUsed    LinkStatus = "USED"
	LinkExpired LinkStatus = "EXPIRED"
	LinkRevoked LinkStatus = "REVOKED"
)

// ApplicationStatus is where an application through a link stands.
type ApplicationStatus string

// Application statuses. PENDING is the only one that changes.
const (
	ApplicationPending   ApplicationStatus = "PENDING"
	ApplicationApproved  ApplicationStatus = "APPROVED"
	ApplicationRejected  ApplicationStatus = "REJECTED"
	ApplicationWithdrawn ApplicationStatus = "WITHDRAWN"
)

// ApplicationLink is a partner's link through which personal accounts apply.
// Its token is shown once, at creation; only its SHA-256 is kept.
type ApplicationLink struct {
	ID        int64
	PartnerID int64
	Kind      LinkKind
	ExpiresAt time.Time
	// UsageLimit is how many applications the link takes; nil: no limit.
	UsageLimit *int
	// Uses counts the applications made through the link.
	Uses      int
	CreatedBy *int64
	CreatedAt time.Time
	RevokedAt *time.Time
	// Status is computed as of the read.
	Status LinkStatus `gorm:"-"`
}

// IsNode marks ApplicationLink as a Node.
func (ApplicationLink) IsNode() {}

// GlobalID is the link's global ID.
func (l *ApplicationLink) GlobalID() string { return ids.Encode(TypeApplicationLink, l.ID) }

// Remaining is how many more applications the link takes under its usage
// limit (nil: no limit), whatever its expiry.
func (l *ApplicationLink) Remaining() *int {
	if l.UsageLimit == nil {
		return nil
	}
	n := max(*l.UsageLimit-l.Uses, 0)
	return &n
}

func (l *ApplicationLink) usedUp() bool { return l.UsageLimit != nil && l.Uses >= *l.UsageLimit }

// statusAt is the link's status at now (see LinkStatus).
func (l *ApplicationLink) statusAt(now time.Time) LinkStatus {
	switch {
	case l.RevokedAt != nil:
		return LinkRevoked
	case l.usedUp():
		return LinkUsed
	case !now.Before(l.ExpiresAt):
		return LinkExpired
	case l.Uses > 0:
		return LinkUsed
	}
	return LinkUnused
}

// LinkApplication is a PERSONAL account's application through a link to
// become the link's partner's Kind.
type LinkApplication struct {
	ID          int64
	LinkID      int64
	PartnerID   int64
	ApplicantID int64
	Kind        LinkKind
	Status      ApplicationStatus
	// Reason is the partner's reason of a rejection (optional note of an
	// approval), or why the application was withdrawn.
	Reason    string
	AppliedBy *int64
	AppliedAt time.Time
	DecidedAt *time.Time
	DecidedBy *int64
}

// IsNode marks LinkApplication as a Node.
func (LinkApplication) IsNode() {}

// GlobalID is the application's global ID.
func (a *LinkApplication) GlobalID() string { return ids.Encode(TypeLinkApplication, a.ID) }

const (
	linkColumns        = `b.id, b.partner_id, b.kind, b.expires_at, b.usage_limit, b.uses, b.created_by, b.created_at, b.revoked_at`
	applicationColumns = `b.id, b.link_id, b.partner_id, b.applicant_id, b.kind, b.status, b.reason, b.applied_by, b.applied_at, b.decided_at, b.decided_by`
	// fromLinks and fromApplications join a row b with its partner p, for
	// the scope check.
	fromLinks        = `application_links b JOIN accounts p ON p.id = b.partner_id`
	fromApplications = `link_applications b JOIN accounts p ON p.id = b.partner_id`
)

// ApplicationLinkURL is where the holder of token applies:
// PUBLIC_URL/application-links/apply?token=TOKEN.
func (s *Service) ApplicationLinkURL(token string) string {
	return s.opts.PublicURL + "/application-links/apply?token=" + url.QueryEscape(token)
}

// applicationURL is where the parties open an application.
func (s *Service) applicationURL(id int64) string {
	return s.opts.PublicURL + "/link-applications/" + ids.Encode(TypeLinkApplication, id)
}

// CreateApplicationLink creates a link of partner partnerID (ADMIN or
// OPERATOR of the partner or above it; outside the caller's scope:
// NOT_FOUND) through which personal accounts apply to become its kind, until
// expiresAt (in the future, at most MaxLinkTTL ahead), for at most
// usageLimit applications (nil: no limit; else 1..MaxLinkUses). RESELLER
// links are a distributor's only. It returns the link and its token
// ("al_" and 32 random bytes in base64url), shown this once.
func (s *Service) CreateApplicationLink(ctx context.Context, partnerID int64, kind LinkKind, expiresAt time.Time, usageLimit *int) (*ApplicationLink, string, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, "", err
	}
	var out *ApplicationLink
	var token string
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		partner, err := accounts.GetInScope(tx.DB, sc, partnerID)
		if err != nil {
			return err
		}
		if err := sc.Require(accounts.PermManageCustomers); err != nil {
			return err
		}
		if !partner.Kind.IsPartner() {
			return apperr.Invalid("partnerId", "application links belong to a distributor or reseller, not to a %s", partner.Kind)
		}
		switch kind {
		case LinkCustomer:
		case LinkReseller:
			if partner.Kind != models.KindDistributor {
				return apperr.Invalid("kind", "only a distributor takes second-level resellers; a %s's links are for customers", partner.Kind)
			}
		default:
			return apperr.Invalid("kind", "unknown application link kind %q: use CUSTOMER or RESELLER", apperr.Clip(string(kind)))
		}
		now := tx.Now()
		if !expiresAt.After(now) {
			return apperr.Invalid("expiresAt", "the expiry must be in the future")
		}
		if expiresAt.After(now.Add(MaxLinkTTL)) {
			return apperr.Invalid("expiresAt", "a link is valid for at most %d days", int(MaxLinkTTL/(24*time.Hour)))
		}
		if usageLimit != nil && (*usageLimit < 1 || *usageLimit > MaxLinkUses) {
			return apperr.Invalid("usageLimit", "the usage limit must be between 1 and %d, or none", MaxLinkUses)
		}
		var hash []byte
		if token, hash, err = newLinkToken(); err != nil {
			return err
		}
		p := sc.Principal()
		// The database keeps microseconds.
		l := &ApplicationLink{PartnerID: partner.ID, Kind: kind, ExpiresAt: expiresAt.UTC().Truncate(time.Microsecond), UsageLimit: usageLimit, CreatedAt: now}
		if !p.System {
			l.CreatedBy = &p.UserID
		}
		if err := tx.DB.Raw(`INSERT INTO application_links (partner_id, kind, token_hash, expires_at, usage_limit, created_by, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`, l.PartnerID, l.Kind, hash, l.ExpiresAt, l.UsageLimit, l.CreatedBy, now).Scan(&l.ID).Error; err != nil {
			return fmt.Errorf("create application link: %w", err)
		}
		l.Status = l.statusAt(now)
		out = l
		return tx.Audit("applink.create", partner.ID, nil, map[string]any{"linkId": l.ID, "kind": l.Kind,
			"expiresAt": l.ExpiresAt, "usageLimit": l.UsageLimit})
	})
	if err != nil {
		return nil, "", err
	}
	return out, token, nil
}

// RevokeApplicationLink ends a link (ADMIN or OPERATOR of its partner or
// above it; outside the caller's scope: NOT_FOUND): it takes no more
// applications, and its token reads as unknown. Applications already made
// through it stay as they are, pending ones to be decided. Revoking it twice
// is a CONFLICT.
func (s *Service) RevokeApplicationLink(ctx context.Context, id int64) (*ApplicationLink, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var out *ApplicationLink
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		q, args := sc.SQL("p.path")
		var l ApplicationLink
		if err := tx.DB.Raw(`SELECT `+linkColumns+` FROM `+fromLinks+` WHERE b.id = ? AND `+q+` FOR UPDATE OF b`,
			append([]any{id}, args...)...).Scan(&l).Error; err != nil {
			return fmt.Errorf("lock application link %d: %w", id, err)
		}
		if l.ID == 0 {
			return accounts.NotFound("application link")
		}
		if err := sc.Require(accounts.PermManageCustomers); err != nil {
			return err
		}
		if l.RevokedAt != nil {
			return apperr.Conflictf("the application link was already revoked")
		}
		now := tx.Now()
		if err := tx.DB.Exec(`UPDATE application_links SET revoked_at = ?, revoked_by = ? WHERE id = ?`,
			now, userOf(sc.Principal()), l.ID).Error; err != nil {
			return fmt.Errorf("revoke application link %d: %w", l.ID, err)
		}
		before := l.statusAt(now)
		l.RevokedAt = &now
		l.Status = l.statusAt(now)
		out = &l
		return tx.Audit("applink.revoke", l.PartnerID, map[string]any{"linkId": l.ID, "status": before},
			map[string]any{"linkId": l.ID, "status": l.Status})
	})
	return out, err
}

// ApplicationLink returns one link whose partner is in the caller's scope,
// else NOT_FOUND.
func (s *Service) ApplicationLink(ctx context.Context, id int64) (*ApplicationLink, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	q, args := sc.SQL("p.path")
	var l ApplicationLink
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT `+linkColumns+` FROM `+fromLinks+` WHERE b.id = ? AND `+q,
		append([]any{id}, args...)...).Scan(&l).Error; err != nil {
		return nil, fmt.Errorf("load application link %d: %w", id, err)
	}
	if l.ID == 0 {
		return nil, accounts.NotFound("application link")
	}
	l.Status = l.statusAt(s.st.Now())
	return &l, nil
}

// ApplicationLinks returns a page of partner partnerID's links, newest
// first, with their status as of now (the partner outside the caller's
// scope: NOT_FOUND).
func (s *Service) ApplicationLinks(ctx context.Context, partnerID int64, first int, afterID int64) (*store.Page[*ApplicationLink], error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	db := s.st.DB.WithContext(ctx)
	if _, err := accounts.GetInScope(db, sc, partnerID); err != nil {
		return nil, err
	}
	page, err := store.PageOf[*ApplicationLink](db, "application_links b", "b.partner_id = ?", []any{partnerID},
		"-b.id", "b.id DESC", first, accounts.MaxPageSize, afterID)
	if err != nil {
		return nil, err
	}
	now := s.st.Now()
	for _, l := range page.Items {
		l.Status = l.statusAt(now)
	}
	return page, nil
}

// LinkPreview is what the holder of a link's token learns before applying:
// whose link it is, what it makes of an applicant, and whether it is still
// usable.
type LinkPreview struct {
	PartnerName string
	PartnerKind models.AccountKind
	Kind        LinkKind
	ExpiresAt   time.Time
	Status      LinkStatus
}

// PreviewApplicationLink tells any signed-in user holding token whose link
// it is (an unknown or revoked token: NOT_FOUND), so the applicant knows
// which partner it applies to.
func (s *Service) PreviewApplicationLink(ctx context.Context, token string) (*LinkPreview, error) {
	if _, ok := accounts.PrincipalFrom(ctx); !ok {
		return nil, accounts.ErrUnauthenticated
	}
	hash, ok := linkTokenHash(token)
	if !ok {
		return nil, errUnknownLink
	}
	var row struct {
		ApplicationLink
		PartnerName string
		PartnerKind models.AccountKind
	}
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT `+linkColumns+`, p.name AS partner_name, p.kind AS partner_kind
		FROM `+fromLinks+` WHERE b.token_hash = ?`, hash).Scan(&row).Error; err != nil {
		return nil, fmt.Errorf("load application link: %w", err)
	}
	l := &row.ApplicationLink
	if l.ID == 0 || l.RevokedAt != nil {
		return nil, errUnknownLink
	}
	return &LinkPreview{PartnerName: row.PartnerName, PartnerKind: row.PartnerKind, Kind: l.Kind, ExpiresAt: l.ExpiresAt,
		Status: l.statusAt(s.st.Now())}, nil
}

var errUnknownLink = apperr.NotFoundf("no application link has this token")

// ApplyWithLink is the caller's PERSONAL account applying, by its ADMIN,
// through the link of token to become the link's partner's CUSTOMER (or
// RESELLER); it counts a use of the link and tells the partner's operators.
// The system, a user of the platform or of a partner, and a non-ADMIN are
// FORBIDDEN; an unknown or revoked token is NOT_FOUND; a link past its
// expiry or used up, and an account that cannot be associated (no longer
// personal, frozen, in arrears; for a RESELLER link, holding unreleased
// resources) are PRECONDITION_FAILED; a second pending application to the
// same partner is a CONFLICT.
func (s *Service) ApplyWithLink(ctx context.Context, token string) (*LinkApplication, error) {
	p, ok := accounts.PrincipalFrom(ctx)
	if !ok {
		return nil, accounts.ErrUnauthenticated
	}
	if p.IsPlatform() || p.AccountKind.IsPartner() {
		return nil, apperr.Forbiddenf("a personal account applies through an application link, not a %s", p.AccountKind)
	}
	if !p.Roles.Has(models.RoleAdmin) {
		return nil, apperr.Forbiddenf("an ADMIN of the account applies through an application link")
	}
	hash, ok := linkTokenHash(token)
	if !ok {
		return nil, errUnknownLink
	}
	var out *LinkApplication
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		var l ApplicationLink
		if err := tx.DB.Raw(`SELECT `+linkColumns+` FROM application_links b WHERE b.token_hash = ? FOR UPDATE`, hash).Scan(&l).Error; err != nil {
			return fmt.Errorf("lock application link: %w", err)
		}
		if l.ID == 0 || l.RevokedAt != nil {
			return errUnknownLink
		}
		now := tx.Now()
		if l.usedUp() {
			return apperr.Preconditionf("the application link was used %d times, its limit; ask the partner for a new one", l.Uses)
		}
		if !now.Before(l.ExpiresAt) {
			return apperr.Preconditionf("the application link expired at %s; ask the partner for a new one", l.ExpiresAt.UTC().Format(time.RFC3339))
		}
		a, err := lockAccount(tx, p.AccountID)
		if err != nil {
			return err
		}
		if err := linkable(tx, a, l.Kind); err != nil {
			return err
		}
		app := &LinkApplication{LinkID: l.ID, PartnerID: l.PartnerID, ApplicantID: a.ID, Kind: l.Kind, Status: ApplicationPending,
			AppliedBy: &p.UserID, AppliedAt: now}
		err = tx.DB.Raw(`INSERT INTO link_applications (link_id, partner_id, applicant_id, kind, applied_by, applied_at)
			VALUES (?, ?, ?, ?, ?, ?) RETURNING id`, app.LinkID, app.PartnerID, app.ApplicantID, app.Kind, app.AppliedBy, now).Scan(&app.ID).Error
		if store.PgConstraint(err) == "link_applications_one_pending" {
			return apperr.Conflictf("your account already has a pending application to this partner")
		}
		if err != nil {
			return fmt.Errorf("apply through link %d: %w", l.ID, err)
		}
		if err := tx.DB.Exec(`UPDATE application_links SET uses = uses + 1 WHERE id = ?`, l.ID).Error; err != nil {
			return fmt.Errorf("count a use of link %d: %w", l.ID, err)
		}
		out = app
		if err := tx.Audit("applink.apply", a.ID, nil, map[string]any{"applicationId": app.ID, "linkId": l.ID,
			"partnerId": l.PartnerID, "kind": l.Kind}); err != nil {
			return err
		}
		return tx.Emit(notify.AppLinkApplied{ApplicationID: app.ID, LinkID: l.ID, PartnerID: l.PartnerID, ApplicantID: a.ID,
			Kind: string(l.Kind), URL: s.applicationURL(app.ID)})
	})
	return out, err
}

// DecideApplication approves or rejects a pending application (ADMIN or
// OPERATOR of the link's partner or above it; an application outside the
// caller's scope is NOT_FOUND, the applicant deciding its own FORBIDDEN, one
// no longer pending a CONFLICT). A rejection needs a reason (at most 500
// characters; an approval may carry one as a note). Approval checks the
// refusals of ApplyWithLink again (PRECONDITION_FAILED, the application
// stays pending) and then makes the applicant the partner's CUSTOMER —
// FROZEN with reason NEW_CUSTOMER, as an accepted invitation — or RESELLER,
// and withdraws the applicant's other pending applications. The applicant
// is told either way.
func (s *Service) DecideApplication(ctx context.Context, id int64, approve bool, reason string) (*LinkApplication, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	reason = strings.TrimSpace(reason)
	if len([]rune(reason)) > 500 {
		return nil, apperr.Invalid("reason", "at most 500 characters")
	}
	var out *LinkApplication
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		// An approval locks the applicant before the application, as
		// ApplyWithLink does: it withdraws the applicant's other pending
		// applications, which a concurrent approval of one of them would
		// otherwise hold while waiting for the applicant.
		var a *models.Account
		if approve {
			peek, err := findApplication(tx.DB, sc, id, "")
			if err != nil {
				return err
			}
			if a, err = lockAccount(tx, peek.ApplicantID); err != nil {
				return err
			}
		}
		app, err := lockApplication(tx, sc, id)
		if err != nil {
			return err
		}
		if !sc.Principal().IsPlatform() && app.ApplicantID == sc.Principal().AccountID {
			return apperr.Forbiddenf("the partner decides an application; the applicant may withdraw it")
		}
		if err := sc.Require(accounts.PermManageCustomers); err != nil {
			return err
		}
		if !approve && reason == "" {
			return apperr.Invalid("reason", "give the reason of a rejection; the applicant reads it")
		}
		if app.Status != ApplicationPending {
			return apperr.Conflictf("the application is already %s", strings.ToLower(string(app.Status)))
		}
		by := userOf(sc.Principal())
		now := tx.Now()
		if !approve {
			if err := s.closeApplication(tx, app, ApplicationRejected, reason, by); err != nil {
				return err
			}
			out = app
			if err := tx.Audit("applink.reject", app.ApplicantID, nil, map[string]any{"applicationId": app.ID, "reason": reason}); err != nil {
				return err
			}
			return tx.Emit(s.decided(app))
		}
		if err := linkable(tx, a, app.Kind); err != nil {
			return err
		}
		var partner models.Account
		if err := tx.DB.Raw(`SELECT * FROM accounts WHERE id = ?`, app.PartnerID).Scan(&partner).Error; err != nil {
			return fmt.Errorf("load partner %d: %w", app.PartnerID, err)
		}
		before := map[string]any{"kind": a.Kind, "parentId": a.ParentID, "status": a.Status}
		after := map[string]any{"parentId": partner.ID, "applicationId": app.ID}
		switch app.Kind {
		case LinkReseller:
			if err := s.associateReseller(tx, a, &partner); err != nil {
				return err
			}
			after["kind"], after["status"] = models.KindReseller, a.Status
		default:
			if err := s.associateCustomer(tx, a, &partner); err != nil {
				return err
			}
			after["kind"], after["status"], after["frozenReason"] = models.KindCustomer, models.StatusFrozen, models.FrozenNewCustomer
		}
		if err := s.closeApplication(tx, app, ApplicationApproved, reason, by); err != nil {
			return err
		}
		out = app
		if err := tx.Audit("applink.approve", a.ID, before, after); err != nil {
			return err
		}
		if err := withdrawPending(tx, a.ID, "the applicant is no longer a personal account", now); err != nil {
			return err
		}
		return tx.Emit(s.decided(app), accounts.AccountChanged{AccountID: a.ID, Change: "associated"})
	})
	return out, err
}

// WithdrawApplication is the applicant taking back its pending application
// (an ADMIN of the applicant account; the partner's users: FORBIDDEN, they
// reject; anyone else NOT_FOUND; one no longer pending a CONFLICT). The use
// it counted stays counted.
func (s *Service) WithdrawApplication(ctx context.Context, id int64) (*LinkApplication, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var out *LinkApplication
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		app, err := lockApplication(tx, sc, id)
		if err != nil {
			return err
		}
		p := sc.Principal()
		if p.AccountID != app.ApplicantID {
			return apperr.Forbiddenf("the applicant withdraws an application; the partner rejects it")
		}
		if !p.Has(models.RoleAdmin) {
			return apperr.Forbiddenf("an ADMIN of the account withdraws its application")
		}
		if app.Status != ApplicationPending {
			return apperr.Conflictf("the application is already %s", strings.ToLower(string(app.Status)))
		}
		if err := s.closeApplication(tx, app, ApplicationWithdrawn, "", userOf(p)); err != nil {
			return err
		}
		out = app
		return tx.Audit("applink.withdraw", app.ApplicantID, nil, map[string]any{"applicationId": app.ID})
	})
	return out, err
}

// ApplicationFilter selects applications: those made to partner PartnerID,
// through link LinkID, or by applicant ApplicantID — exactly one of the
// three — narrowed by Status when set. The caller sees the applications
// whose partner is in its scope and those its own account made.
type ApplicationFilter struct {
	PartnerID   int64
	LinkID      int64
	ApplicantID int64
	Status      ApplicationStatus
}

// LinkApplications returns a page of the applications f selects, newest
// first. A partner, link or applicant the caller may not see is NOT_FOUND.
func (s *Service) LinkApplications(ctx context.Context, f ApplicationFilter, first int, afterID int64) (*store.Page[*LinkApplication], error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	db := s.st.DB.WithContext(ctx)
	var where string
	var args []any
	set := 0
	if f.PartnerID != 0 {
		set++
		if _, err := accounts.GetInScope(db, sc, f.PartnerID); err != nil {
			return nil, err
		}
		where, args = "b.partner_id = ?", []any{f.PartnerID}
	}
	if f.LinkID != 0 {
		set++
		if _, err := s.ApplicationLink(ctx, f.LinkID); err != nil {
			return nil, err
		}
		where, args = "b.link_id = ?", []any{f.LinkID}
	}
	if f.ApplicantID != 0 {
		set++
		if f.ApplicantID != sc.Principal().AccountID {
			if _, err := accounts.GetInScope(db, sc, f.ApplicantID); err != nil {
				return nil, err
			}
		}
		where, args = "b.applicant_id = ?", []any{f.ApplicantID}
	}
	if set != 1 {
		return nil, apperr.Invalid("partnerId", "give exactly one of partnerId, linkId and applicantId")
	}
	switch f.Status {
	case "":
	case ApplicationPending, ApplicationApproved, ApplicationRejected, ApplicationWithdrawn:
		where, args = where+" AND b.status = ?", append(args, string(f.Status))
	default:
		return nil, apperr.Invalid("status", "unknown application status %q", apperr.Clip(string(f.Status)))
	}
	q, qa := visibleApplications(sc)
	return store.PageOf[*LinkApplication](db, fromApplications, where+" AND "+q, append(args, qa...),
		"-b.id", "b.id DESC", first, accounts.MaxPageSize, afterID)
}

// LinkApplication returns one application the caller sees (its partner in
// scope, or made by the caller's own account), else NOT_FOUND.
func (s *Service) LinkApplication(ctx context.Context, id int64) (*LinkApplication, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	return findApplication(s.st.DB.WithContext(ctx), sc, id, "")
}

// ApplicationPartner returns the partner an application was made to, for a
// caller who sees the application: the applicant sees whom it applied to
// (the partner is otherwise outside its scope).
func (s *Service) ApplicationPartner(ctx context.Context, app *LinkApplication) (*models.Account, error) {
	return s.applicationParty(ctx, app, app.PartnerID)
}

// ApplicationApplicant returns the account that applied, for a caller who
// sees the application: the partner sees who applied (a PERSONAL account is
// otherwise outside its scope) to decide.
func (s *Service) ApplicationApplicant(ctx context.Context, app *LinkApplication) (*models.Account, error) {
	return s.applicationParty(ctx, app, app.ApplicantID)
}

// applicationParty loads account id, a party of app, once the caller is
// found to see app (else NOT_FOUND).
func (s *Service) applicationParty(ctx context.Context, app *LinkApplication, id int64) (*models.Account, error) {
	if _, err := s.LinkApplication(ctx, app.ID); err != nil {
		return nil, err
	}
	var a models.Account
	if err := s.st.DB.WithContext(ctx).Take(&a, id).Error; err != nil {
		return nil, fmt.Errorf("load account %d: %w", id, err)
	}
	return &a, nil
}

// visibleApplications is the condition under which the caller sees
// application b (its partner joined as p): the partner in scope, or the
// caller's own account the applicant — not a later partner of an applicant
// that moved on, for applications to other partners.
func visibleApplications(sc accounts.Scope) (string, []any) {
	q, args := sc.SQL("p.path")
	if sc.All() {
		return q, args
	}
	return "(" + q + " OR b.applicant_id = ?)", append(args, sc.Principal().AccountID)
}

// lockApplication locks an application the caller sees, else NOT_FOUND.
func lockApplication(tx *store.Tx, sc accounts.Scope, id int64) (*LinkApplication, error) {
	return findApplication(tx.DB, sc, id, " FOR UPDATE OF b")
}

// findApplication reads an application the caller sees, else NOT_FOUND;
// suffix ends the query (a locking clause).
func findApplication(db *gorm.DB, sc accounts.Scope, id int64, suffix string) (*LinkApplication, error) {
	q, args := visibleApplications(sc)
	var app LinkApplication
	if err := db.Raw(`SELECT `+applicationColumns+` FROM `+fromApplications+` WHERE b.id = ? AND `+q+suffix,
		append([]any{id}, args...)...).Scan(&app).Error; err != nil {
		return nil, fmt.Errorf("load application %d: %w", id, err)
	}
	if app.ID == 0 {
		return nil, accounts.NotFound("application")
	}
	return &app, nil
}

// closeApplication records the end of a pending application.
func (s *Service) closeApplication(tx *store.Tx, app *LinkApplication, status ApplicationStatus, reason string, by *int64) error {
	now := tx.Now()
	if err := tx.DB.Exec(`UPDATE link_applications SET status = ?, reason = ?, decided_at = ?, decided_by = ? WHERE id = ?`,
		status, reason, now, by, app.ID).Error; err != nil {
		return fmt.Errorf("close application %d: %w", app.ID, err)
	}
	app.Status, app.Reason, app.DecidedAt, app.DecidedBy = status, reason, &now, by
	return nil
}

// withdrawPending withdraws every pending application of applicant, with
// reason: it was associated with a partner and can no longer be with
// another. Call it whenever a personal account joins a partner.
func withdrawPending(tx *store.Tx, applicant int64, reason string, now time.Time) error {
	var closed []int64
	if err := tx.DB.Raw(`UPDATE link_applications SET status = 'WITHDRAWN', reason = ?, decided_at = ?
		WHERE applicant_id = ? AND status = 'PENDING' RETURNING id`, reason, now, applicant).Scan(&closed).Error; err != nil {
		return fmt.Errorf("withdraw the pending applications of %d: %w", applicant, err)
	}
	if len(closed) == 0 {
		return nil
	}
	return tx.Audit("applink.withdraw", applicant, nil, map[string]any{"applicationIds": closed, "reason": reason})
}

// decided is the event that tells the applicant of app's decision.
func (s *Service) decided(app *LinkApplication) notify.AppLinkDecided {
	return notify.AppLinkDecided{ApplicationID: app.ID, PartnerID: app.PartnerID, ApplicantID: app.ApplicantID, Kind: string(app.Kind),
		Approved: app.Status == ApplicationApproved, Reason: app.Reason, URL: s.applicationURL(app.ID)}
}

// linkable refuses an account (locked) that cannot become a partner's kind
// through a link: the invitation's refusals (associable: frozen, in arrears)
// after the account is still personal, and, to become a reseller, holding
// resources that are not released.
func linkable(tx *store.Tx, a *models.Account, kind LinkKind) error {
	if a.Kind != models.KindPersonal {
		return apperr.Preconditionf("the account is already a %s: only a personal account can be associated with a partner", a.Kind)
	}
	if err := associable(tx, a); err != nil {
		return err
	}
	if kind != LinkReseller {
		return nil
	}
	var live int64
	if err := tx.DB.Raw(`SELECT count(*) FROM resources WHERE customer_id = ? AND status <> 'RELEASED'`, a.ID).Scan(&live).Error; err != nil {
		return fmt.Errorf("resources of %d: %w", a.ID, err)
	}
	if live > 0 {
		return apperr.Preconditionf("the account has %d resources that are not released: a reseller does not consume cloud services itself; release them first", live)
	}
	return nil
}

// associateCustomer makes personal account a (locked, checked by
// associable) partner's CUSTOMER exactly as an accepted invitation does:
// moved under the partner (parent history appended), FROZEN with reason
// NEW_CUSTOMER until the partner sets a budget and unfreezes it, its
// purchase guard synced. Audit and events are the caller's.
func (s *Service) associateCustomer(tx *store.Tx, a, partner *models.Account) error {
	now := tx.Now()
	if err := accounts.Move(tx, a, partner, models.KindCustomer); err != nil {
		return err
	}
	if err := tx.DB.Exec(`UPDATE accounts SET status = 'FROZEN', frozen_at = ?, frozen_reason = 'NEW_CUSTOMER' WHERE id = ?`,
		now, a.ID).Error; err != nil {
		return fmt.Errorf("freeze new customer %d: %w", a.ID, err)
	}
	r := models.FrozenNewCustomer
	a.Status, a.FrozenAt, a.FrozenReason = models.StatusFrozen, &now, &r
	return guard.Sync(tx, s.opts.Location, a.ID)
}

// associateReseller makes personal account a (locked, checked by linkable)
// distributor partner's second-level RESELLER: moved under it (parent
// history appended), ACTIVE, with no purchase guard — a reseller buys
// nothing itself, so purchase authorization answers for it as for any
// partner. Its credit limit is what the distributor allocates to it.
func (s *Service) associateReseller(tx *store.Tx, a, partner *models.Account) error {
	if partner.Kind != models.KindDistributor {
		return apperr.Preconditionf("only a distributor takes second-level resellers, not a %s", partner.Kind)
	}
	if err := accounts.Move(tx, a, partner, models.KindReseller); err != nil {
		return err
	}
	if err := tx.DB.Exec(`DELETE FROM purchase_guards WHERE customer_id = ?`, a.ID).Error; err != nil {
		return fmt.Errorf("drop the purchase guard of %d: %w", a.ID, err)
	}
	return nil
}

// userOf is the principal's user ID for a *_by column: nil for the system.
func userOf(p *accounts.Principal) *int64 {
	if p.System {
		return nil
	}
	id := p.UserID
	return &id
}

// linkTokenHash is the SHA-256 of a well-formed link token.
func linkTokenHash(token string) ([]byte, bool) {
	if !strings.HasPrefix(token, linkTokenPrefix) || len(token) > 100 {
		return nil, false
	}
	sum := sha256.Sum256([]byte(token))
	return sum[:], true
}

// newLinkToken returns a fresh application link token and its SHA-256.
func newLinkToken() (string, []byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("application link token: %w", err)
	}
	token := linkTokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(token))
	return token, sum[:], nil
}
