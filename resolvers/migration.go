package resolvers

import (
	"context"
	"fmt"
	"io"

	"github.com/99designs/gqlgen/graphql"
	"github.com/graph-gophers/dataloader/v7"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/graph"
	"partnerd/ids"
	"partnerd/migration"
	"partnerd/models"
	"partnerd/notify"
)

// migrationRows turns the rows or the uploaded file of createMigration and
// addMigrationRows into rows to import and rows rejected.
func migrationRows(rows []*graph.MigrationRowInput, file *graphql.Upload) ([]migration.Row, []migration.RowError, error) {
	var in []migration.InputRow
	if rows != nil {
		in = make([]migration.InputRow, len(rows))
		for i, r := range rows {
			in[i] = migration.InputRow{AccountID: r.AccountID, Credit: r.CreditToAllocate.String()}
		}
	}
	var f io.Reader
	if file != nil {
		f = file.File
	}
	return migration.Read(in, f)
}

func (r *mutationResolver) createMigration(ctx context.Context, sourceID string, rows []*graph.MigrationRowInput, file *graphql.Upload) (*migration.Migration, error) {
	src, err := ids.Decode(sourceID, TypeAccount)
	if err != nil {
		return nil, err
	}
	ok, rejected, err := migrationRows(rows, file)
	if err != nil {
		return nil, err
	}
	return r.Batches.Create(ctx, src, ok, rejected)
}

func (r *mutationResolver) addMigrationRows(ctx context.Context, id string, rows []*graph.MigrationRowInput, file *graphql.Upload) (*migration.Migration, error) {
	key, err := ids.Decode(id, migration.TypeMigration)
	if err != nil {
		return nil, err
	}
	ok, rejected, err := migrationRows(rows, file)
	if err != nil {
		return nil, err
	}
	return r.Batches.AddRows(ctx, key, ok, rejected)
}

func (r *mutationResolver) removeMigrationItem(ctx context.Context, id, accountID string) (*migration.Migration, error) {
	key, err := ids.Decode(id, migration.TypeMigration)
	if err != nil {
		return nil, err
	}
	acct, err := ids.Decode(accountID, TypeAccount)
	if err != nil {
		return nil, err
	}
	return r.Batches.RemoveItem(ctx, key, acct)
}

// migrationStep runs a state change of batch id.
func (r *mutationResolver) migrationStep(ctx context.Context, id string, fn func(ctx context.Context, id int64) (*migration.Migration, error)) (*migration.Migration, error) {
	key, err := ids.Decode(id, migration.TypeMigration)
	if err != nil {
		return nil, err
	}
	return fn(ctx, key)
}

func (r *queryResolver) migrations(ctx context.Context, status *migration.Status, role *migration.Role, first *int, after *string) ([]*migration.Migration, error) {
	var before int64
	if after != nil && *after != "" {
		key, err := ids.Decode(*after, migration.TypeMigration)
		if err != nil {
			return nil, apperr.Invalid("after", "after is the ID of the last batch of the previous page")
		}
		before = key
	}
	var st migration.Status
	if status != nil {
		st = *status
	}
	var ro migration.Role
	if role != nil {
		ro = *role
	}
	list, _, err := r.Batches.List(ctx, st, ro, pageSize(first, 50), before)
	return list, err
}

func (r *queryResolver) dataTransferStatement(ctx context.Context, locale *string) (*migration.Statement, error) {
	def := models.LocaleEnUS
	if p, ok := accounts.PrincipalFrom(ctx); ok && p != nil {
		def = p.Locale
	}
	loc := ""
	if locale != nil {
		loc = *locale
	}
	st, err := migration.StatementIn(loc, def)
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// migrationAccount is an account of batch m (a party or a customer of it):
// through the scoped, batched account loader when the caller sees it, else
// through the migration, whose parties see its customers and each other.
func (r *Resolver) migrationAccount(ctx context.Context, m *migration.Migration, id int64) (*models.Account, error) {
	return r.party(ctx, id, func() (*models.Account, error) { return r.Batches.Account(ctx, m, id) })
}

func (r *migrationResolver) items(ctx context.Context, obj *migration.Migration, first *int, after *string) (*graph.MigrationItemConnection, error) {
	afterID, err := decodeCursor(after)
	if err != nil {
		return nil, err
	}
	list, more, total, err := r.Batches.Items(ctx, obj, pageSize(first, 100), afterID)
	if err != nil {
		return nil, err
	}
	// The parties of a batch see its customers, also those outside their
	// scope (the source's, before the move): load the page's accounts in one
	// query through the batch.
	keys := make([]int64, len(list))
	for i, it := range list {
		keys[i] = it.AccountID
	}
	accts, err := r.Batches.Accounts(ctx, obj, keys)
	if err != nil {
		return nil, err
	}
	for _, it := range list {
		it.Batch, it.Account = obj, accts[it.AccountID]
	}
	conn := &graph.MigrationItemConnection{TotalCount: int(total)}
	conn.Edges, conn.PageInfo = edges(list, more, func(i *migration.Item) int64 { return i.ID },
		func(c string, i *migration.Item) *graph.MigrationItemEdge {
			return &graph.MigrationItemEdge{Cursor: c, Node: i}
		})
	return conn, nil
}

func (r *migrationResolver) acknowledgement(ctx context.Context, obj *migration.Migration) (*graph.DataTransferAcknowledgement, error) {
	if obj.StatementAt == nil {
		return nil, nil
	}
	by, err := r.Batches.AcknowledgedBy(ctx, obj)
	if err != nil {
		return nil, err
	}
	return &graph.DataTransferAcknowledgement{By: by, Version: deref(obj.StatementVersion), Locale: deref(obj.StatementLocale),
		At: *obj.StatementAt}, nil
}

func (r *migrationResolver) counts(ctx context.Context, obj *migration.Migration) (*graph.MigrationCounts, error) {
	c, err := r.Batches.Counts(ctx, obj)
	if err != nil {
		return nil, err
	}
	return &graph.MigrationCounts{Total: c.Items, Pending: c.Pending, Migrated: c.Migrated, Failed: c.Failed}, nil
}

// migrationUpdated streams the batch each time it changes, reloaded through
// the subscriber's sight of it.
func (r *subscriptionResolver) migrationUpdated(ctx context.Context, id string) (<-chan *migration.Migration, error) {
	key, err := ids.Decode(id, migration.TypeMigration)
	if err != nil {
		return nil, err
	}
	if _, err := r.Batches.Get(ctx, key); err != nil {
		return nil, err
	}
	msgs, err := r.Live.Subscribe(ctx, notify.MigrationTopic(key))
	if err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	out := make(chan *migration.Migration, 1)
	go func() {
		defer close(out)
		for range msgs {
			m, err := r.Batches.Get(ctx, key)
			if err != nil {
				return
			}
			select {
			case out <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// newInMigrationLoader batches Account.inMigration.
func (r *Resolver) newInMigrationLoader() *dataloader.Loader[int64, bool] {
	return dataloader.NewBatchedLoader(func(ctx context.Context, keys []int64) []*dataloader.Result[bool] {
		m, err := r.Batches.InMigration(ctx, keys)
		out := make([]*dataloader.Result[bool], len(keys))
		for i, k := range keys {
			out[i] = &dataloader.Result[bool]{Data: m[k], Error: err}
		}
		return out
	}, dataloader.WithWait[int64, bool](batchWait))
}
