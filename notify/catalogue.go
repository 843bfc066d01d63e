package notify

import (
	"encoding/json"
	"fmt"
	"slices"

	"partnerd/models"
	"partnerd/store"
)

// Audience names whose users are told of an event: the users of one account
// (Account), of an account's parent (ParentOf) or of the platform (Platform)
// who hold one of Roles. ADMIN always qualifies, except on the platform,
// where exactly Roles do (so the platform's reviewers are not joined by every
// platform admin). An account without a qualifying user is told through its
// contact email and phone and its account-wide inbox.
type Audience struct {
	Account  int64
	ParentOf int64
	Platform bool
	Roles    []models.Role
}

// To is the audience of the users of account id with one of roles (or ADMIN).
func To(id int64, roles ...models.Role) Audience { return Audience{Account: id, Roles: roles} }

// ToParentOf is the audience of the users of the parent of account id (its
// partner; for a second-level reseller, its distributor) with one of roles.
func ToParentOf(id int64, roles ...models.Role) Audience {
	return Audience{ParentOf: id, Roles: roles}
}

// ToPlatform is the audience of the platform's users with one of roles.
func ToPlatform(roles ...models.Role) Audience { return Audience{Platform: true, Roles: roles} }

// Channels is a set of channels, for defaults.
type Channels []models.Channel

// Has reports whether c is in the set.
func (cs Channels) Has(c models.Channel) bool { return slices.Contains(cs, c) }

// AllChannels is the default of migrations, freezes, releases and arrears
// (DOMAIN.md §7).
func AllChannels() Channels {
	return Channels{models.ChannelInSite, models.ChannelEmail, models.ChannelSMS}
}

// InSiteAndEmail is the default of budget alerts and the other money matters
// (DOMAIN.md §7).
func InSiteAndEmail() Channels { return Channels{models.ChannelInSite, models.ChannelEmail} }

// Spec is what the catalogue knows of one event type: who is told, and on
// which channels a user is told unless they chose otherwise.
type Spec[T store.Event] struct {
	// Audience lists who is told of e.
	Audience func(e T) []Audience
	// Defaults are the channels on by default.
	Defaults Channels
}

// entry is a catalogue entry with its event type erased.
type entry struct {
	eventType string
	decode    func(payload json.RawMessage) (any, []Audience, error)
	defaults  Channels
	sample    any
}

// Catalogue is the set of events people are notified of. It is built once by
// NewCatalogue and read-only afterwards.
type Catalogue struct {
	entries map[string]entry
	order   []string
}

// Register adds the event type of sample to c with its spec. sample is a
// realistic instance: the template test renders it in every locale.
func Register[T store.Event](c *Catalogue, sample T, spec Spec[T]) {
	typ := sample.EventType()
	if _, dup := c.entries[typ]; dup {
		panic("notify: event type registered twice: " + typ)
	}
	c.entries[typ] = entry{
		eventType: typ,
		defaults:  spec.Defaults,
		sample:    sample,
		decode: func(payload json.RawMessage) (any, []Audience, error) {
			var e T
			if err := json.Unmarshal(payload, &e); err != nil {
				return nil, nil, fmt.Errorf("decode %s event: %w", typ, err)
			}
			return e, spec.Audience(e), nil
		},
	}
	c.order = append(c.order, typ)
}

// NewCatalogue returns the catalogue of every event partnerd notifies people
// of, with its recipients and default channels.
func NewCatalogue() *Catalogue {
	c := &Catalogue{entries: map[string]entry{}}
	fin := models.RoleFinance

	Register(c, CreditLimitSet{PartnerID: 7, Limit: "500000.00", Previous: "300000.00"}, Spec[CreditLimitSet]{
		Audience: func(e CreditLimitSet) []Audience { return []Audience{To(e.PartnerID, fin)} },
		Defaults: InSiteAndEmail(),
	})
	Register(c, CreditAllocated{PartnerID: 7, ChildID: 42, Amount: "20000.00", Limit: "50000.00"}, Spec[CreditAllocated]{
		Audience: func(e CreditAllocated) []Audience { return []Audience{To(e.ChildID, fin), To(e.PartnerID, fin)} },
		Defaults: InSiteAndEmail(),
	})
	Register(c, CreditReversed{PartnerID: 7, ChildID: 42, Amount: "5000.00", Limit: "45000.00"}, Spec[CreditReversed]{
		Audience: func(e CreditReversed) []Audience { return []Audience{To(e.ChildID, fin), To(e.PartnerID, fin)} },
		Defaults: InSiteAndEmail(),
	})
	arrears := Spec[ArrearsChanged]{
		Audience: func(e ArrearsChanged) []Audience {
			return []Audience{To(e.CustomerID, fin), ToParentOf(e.CustomerID, fin)}
		},
		Defaults: AllChannels(),
	}
	Register(c, ArrearsChanged{CustomerID: 42, Entered: true, Available: "-1280.50", Month: "2026-11"}, arrears)
	Register(c, ArrearsChanged{CustomerID: 42, Entered: false, Available: "3719.50", Month: "2026-11"}, arrears)

	ops := models.RoleOperator
	Register(c, BudgetThresholdCrossed{CustomerID: 42, BudgetID: 3, BudgetType: "MONTHLY", Period: "2026-11",
		Threshold: 80, Spent: "8120.00", Amount: "10000.00", UsedPercent: "81.20"}, Spec[BudgetThresholdCrossed]{
		Audience: func(e BudgetThresholdCrossed) []Audience {
			return []Audience{To(e.CustomerID, fin), ToParentOf(e.CustomerID, fin)}
		},
		Defaults: InSiteAndEmail(),
	})
	Register(c, AccountFrozen{AccountID: 42, Mode: "ACCOUNT_AND_RESOURCES", Reason: "OVERSPEND",
		FrozenAt: "2026-11-20T08:00:00Z", ReleaseAt: "2026-11-27T08:00:00Z", Resources: 12}, Spec[AccountFrozen]{
		Audience: func(e AccountFrozen) []Audience {
			return []Audience{To(e.AccountID, ops, fin), ToParentOf(e.AccountID, ops, fin)}
		},
		Defaults: AllChannels(),
	})
	Register(c, AccountUnfrozen{AccountID: 42, Reason: "OVERSPEND", Automatic: false, Resources: 12}, Spec[AccountUnfrozen]{
		Audience: func(e AccountUnfrozen) []Audience {
			return []Audience{To(e.AccountID, ops, fin), ToParentOf(e.AccountID, ops, fin)}
		},
		Defaults: AllChannels(),
	})
	Register(c, ReleaseReminder{AccountID: 42, ReleaseAt: "2026-11-27T08:00:00Z", DaysLeft: 3, Resources: 12}, Spec[ReleaseReminder]{
		Audience: func(e ReleaseReminder) []Audience {
			return []Audience{To(e.AccountID, ops, fin), ToParentOf(e.AccountID, ops, fin)}
		},
		Defaults: AllChannels(),
	})
	Register(c, ResourcesReleased{AccountID: 42, ReleasedAt: "2026-11-27T08:00:00Z", Resources: 12}, Spec[ResourcesReleased]{
		Audience: func(e ResourcesReleased) []Audience {
			return []Audience{To(e.AccountID, ops, fin), ToParentOf(e.AccountID, ops, fin)}
		},
		Defaults: AllChannels(),
	})
	Register(c, GroupChanged{AccountID: 42, PartnerID: 7, Kind: "GROUP", Name: "East China retail", Change: GroupMemberAdded}, Spec[GroupChanged]{
		Audience: func(e GroupChanged) []Audience { return []Audience{To(e.AccountID, fin)} },
		Defaults: Channels{models.ChannelInSite},
	})
	everyone := []models.Role{models.RoleFinance, models.RoleOperator, models.RoleViewer}
	Register(c, InvitationSent{InvitationID: 3, PartnerID: 7, AccountID: 42, Token: "inv_Xq3sY0bX9nV4kQ8mW2tZ1cR7uP5eL6aH0jD3fG9iK2o",
		AcceptURL: "https://partner.example.com/invitations/accept?token=inv_Xq3sY0bX9nV4kQ8mW2tZ1cR7uP5eL6aH0jD3fG9iK2o", ExpiresAt: "2026-12-06T08:00:00Z"},
		Spec[InvitationSent]{
			Audience: func(e InvitationSent) []Audience { return []Audience{To(e.AccountID, everyone...)} },
			Defaults: InSiteAndEmail(),
		})
	Register(c, InvitationAnswered{InvitationID: 3, PartnerID: 7, AccountID: 42, Accepted: true}, Spec[InvitationAnswered]{
		Audience: func(e InvitationAnswered) []Audience {
			return []Audience{To(e.PartnerID, models.RoleOperator)}
		},
		Defaults: InSiteAndEmail(),
	})
	Register(c, UnbindingChanged{UnbindingID: 5, CustomerID: 42, PartnerID: 7, Status: "REQUESTED", RequestedBy: "PARTNER"}, Spec[UnbindingChanged]{
		Audience: func(e UnbindingChanged) []Audience {
			// After completion the customer is no longer the partner's child: name both.
			return []Audience{To(e.CustomerID, models.RoleOperator, fin), To(e.PartnerID, models.RoleOperator)}
		},
		Defaults: InSiteAndEmail(),
	})
	Register(c, MigrationChanged{MigrationID: 12, ReceiverID: 7, SourceID: 9, DistributorID: 3, Status: "COMPLETED", Action: "COMPLETED",
		SourceTold: true, Customers: 120, Migrated: 118, Failed: 2, URL: "https://partner.example.com/migrations/TWlncmF0aW9uOjEy"}, Spec[MigrationChanged]{
		Audience: migrationParties,
		Defaults: AllChannels(),
	})
	Register(c, MigrationApprovalRequested{MigrationID: 12, ApproverID: 9, ReceiverID: 7, SourceID: 9, Status: "PENDING_SOURCE_APPROVAL",
		Customers: 120, Credit: "600000.00", DueAt: "2026-12-12T08:00:00Z", URL: "https://partner.example.com/migrations/TWlncmF0aW9uOjEy"},
		Spec[MigrationApprovalRequested]{
			Audience: func(e MigrationApprovalRequested) []Audience {
				if e.ApproverID == 0 {
					return []Audience{ToPlatform(models.RoleReviewer)}
				}
				return []Audience{To(e.ApproverID, ops)}
			},
			Defaults: AllChannels(),
		})
	Register(c, MigrationCustomerMigrated{MigrationID: 12, CustomerID: 42, SourceID: 9, ReceiverID: 7, Credit: "5000.00",
		EffectiveAt: "2026-11-20T08:00:00Z"}, Spec[MigrationCustomerMigrated]{
		Audience: func(e MigrationCustomerMigrated) []Audience { return []Audience{To(e.CustomerID, ops, fin)} },
		Defaults: AllChannels(),
	})
	Register(c, BillIssued{BillID: 31, PartnerID: 7, SettlesWithID: 1, Month: "2026-10", ListTotal: "128400.00",
		ActualTotal: "102720.00", Adjustments: "312.40", URL: "https://partner.example.com/bills/UGFydG5lckJpbGw6MzE"}, Spec[BillIssued]{
		Audience: func(e BillIssued) []Audience { return []Audience{To(e.PartnerID, fin)} },
		Defaults: InSiteAndEmail(),
	})
	payout := Spec[PayoutChanged]{
		Audience: func(e PayoutChanged) []Audience {
			if e.Status == "APPLIED" {
				return []Audience{ToPlatform(models.RoleReviewer)}
			}
			return []Audience{To(e.PartnerID, fin)}
		},
		Defaults: InSiteAndEmail(),
	}
	Register(c, PayoutChanged{IncentiveID: 4, PartnerID: 7, Month: "2026-10", Amount: "2054.40", Status: "APPLIED",
		URL: "https://partner.example.com/incentives/SW5jZW50aXZlOjQ"}, payout)
	Register(c, PayoutChanged{IncentiveID: 4, PartnerID: 7, Month: "2026-10", Amount: "2054.40", Status: "REJECTED",
		Reason: "The October revenue includes a disputed invoice.", URL: "https://partner.example.com/incentives/SW5jZW50aXZlOjQ"}, payout)

	Register(c, VoucherQuotaLow{PartnerID: 7, Quota: "100000.00", Remaining: "8500.00", ExpiresAt: "2026-12-31T16:00:00Z"}, Spec[VoucherQuotaLow]{
		Audience: func(e VoucherQuotaLow) []Audience { return []Audience{To(e.PartnerID, fin)} },
		Defaults: InSiteAndEmail(),
	})
	Register(c, VoucherQuotaExpired{PartnerID: 7, ExpiredAt: "2026-12-31T16:00:00Z", Unused: "8500.00"}, Spec[VoucherQuotaExpired]{
		Audience: func(e VoucherQuotaExpired) []Audience { return []Audience{To(e.PartnerID, fin)} },
		Defaults: InSiteAndEmail(),
	})
	Register(c, VoucherExpiring{VoucherID: 88, CustomerID: 42, IssuerID: 7, Name: "New customer welcome credit", Remaining: "350.00",
		ExpiresAt: "2026-12-01T00:00:00Z", DaysLeft: 7}, Spec[VoucherExpiring]{
		Audience: func(e VoucherExpiring) []Audience { return []Audience{To(e.CustomerID, fin)} },
		Defaults: InSiteAndEmail(),
	})
	Register(c, VoucherExpired{VoucherID: 88, CustomerID: 42, IssuerID: 7, Name: "New customer welcome credit", Unused: "120.00",
		ExpiredAt: "2026-12-01T00:00:00Z"}, Spec[VoucherExpired]{
		Audience: func(e VoucherExpired) []Audience { return []Audience{To(e.CustomerID, fin)} },
		Defaults: InSiteAndEmail(),
	})
	Register(c, VoucherIssuanceRequested{IssuanceID: 15, ResellerID: 42, DistributorID: 7, Template: "Q4 migration incentive", Customers: 40,
		FaceValue: "500.00", FaceTotal: "20000.00", Threshold: "10000.00"}, Spec[VoucherIssuanceRequested]{
		Audience: func(e VoucherIssuanceRequested) []Audience { return []Audience{To(e.DistributorID, fin)} },
		Defaults: InSiteAndEmail(),
	})
	Register(c, VoucherIssuanceDecided{IssuanceID: 15, ResellerID: 42, DistributorID: 7, Template: "Q4 migration incentive", Approved: false,
		Reason: "Please split the issue by region first."}, Spec[VoucherIssuanceDecided]{
		Audience: func(e VoucherIssuanceDecided) []Audience { return []Audience{To(e.ResellerID, fin)} },
		Defaults: InSiteAndEmail(),
	})
	registerForecasts(c)
	registerApplicationLinks(c)
	registerBulkChanges(c)
	registerWebhooks(c)
	return c
}

// migrationParties are told of a migration batch's change: the receiver, its
// distributor once the batch is submitted, and the source once it is its
// party — except the one whose turn it now is, who is asked for its approval
// by MigrationApprovalRequested.
func migrationParties(e MigrationChanged) []Audience {
	ops := models.RoleOperator
	turn := map[string]int64{"PENDING_DISTRIBUTOR_APPROVAL": e.DistributorID, "PENDING_SOURCE_APPROVAL": e.SourceID}[e.Status]
	out := []Audience{To(e.ReceiverID, ops)}
	if e.DistributorID != 0 && e.Status != "DRAFT" && e.DistributorID != turn && e.DistributorID != e.ReceiverID {
		out = append(out, To(e.DistributorID, ops))
	}
	if e.SourceTold && e.SourceID != turn && e.SourceID != e.DistributorID {
		out = append(out, To(e.SourceID, ops))
	}
	return out
}

// Types lists the catalogue's event types in registration order.
func (c *Catalogue) Types() []string { return slices.Clone(c.order) }

// Has reports whether eventType is in the catalogue.
func (c *Catalogue) Has(eventType string) bool {
	_, ok := c.entries[eventType]
	return ok
}

// FansOut reports whether events of eventType owe deliveries: those of the
// catalogue, and webhook tests.
func (c *Catalogue) FansOut(eventType string) bool {
	return c.Has(eventType) || eventType == EventWebhookTest
}

// Default reports whether ch is on by default for eventType.
func (c *Catalogue) Default(eventType string, ch models.Channel) bool {
	return c.entries[eventType].defaults.Has(ch)
}

// Sample returns the realistic sample event registered for eventType.
func (c *Catalogue) Sample(eventType string) any { return c.entries[eventType].sample }
