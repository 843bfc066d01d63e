package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"partnerd/accounts"
	"partnerd/ids"
	"partnerd/models"
)

// creators is how many accounts are created at once while loading data.
const creators = 4

// words make the generated names read like companies; which word goes
// with which account follows from the seed.
var words = []string{"Apex", "Birch", "Cedar", "Delta", "Ember", "Fjord", "Granite", "Harbor", "Iris", "Juniper",
	"Kestrel", "Lumen", "Maple", "Nova", "Onyx", "Pine", "Quartz", "Raven", "Summit", "Tidal", "Umber", "Vista",
	"Willow", "Xenon", "Yarrow", "Zephyr"}

// namer names generated accounts deterministically from the seed.
type namer struct{ rng *rand.Rand }

func (b *bench) namer(salt uint64) *namer {
	return &namer{rng: rand.New(rand.NewPCG(b.o.seed, salt))}
}

func (n *namer) name(kind string, i int) string {
	return fmt.Sprintf("%s %s %s %d", words[n.rng.IntN(len(words))], words[n.rng.IntN(len(words))], kind, i)
}

// treeFixture is a generated tree: each level's account ids in creation
// order, and all of them.
type treeFixture struct {
	Distributors []int64
	Resellers    []int64
	Customers    []int64
	All          []int64
}

// level is one level of a tree to create: for each parent of the level
// above, per children of kind.
type level struct {
	kind models.AccountKind
	per  int
}

// buildTree creates, through the accounts service as the platform admin,
// dists distributors under the platform and the levels below them (each
// level's accounts under every account of the level above), level by
// level, a few accounts at a time. It is how users build a tree, so it is
// also what the product's create path costs.
func (b *bench) buildTree(ctx context.Context, label string, salt uint64, dists int, levels ...level) (*treeFixture, error) {
	plat, err := b.accounts.Platform(b.platform)
	if err != nil {
		return nil, err
	}
	total, width := dists, dists
	for _, l := range levels {
		width *= l.per
		total += width
	}
	nm := b.namer(salt)
	prog := b.progress(label, int64(total), "accounts", nil)
	defer prog.finish()
	t0 := time.Now()
	f := &treeFixture{}
	parents := []int64{plat.ID}
	all := append([]level{{models.KindDistributor, dists}}, levels...)
	for depth, l := range all {
		var specs []accounts.CreateInput
		for _, p := range parents {
			for i := 0; i < l.per; i++ {
				specs = append(specs, accounts.CreateInput{Kind: l.kind, ParentID: p,
					Name: nm.name(kindWord(l.kind), len(specs)+1)})
			}
		}
		got, err := b.createAll(ctx, specs, prog)
		if err != nil {
			return nil, err
		}
		switch {
		case depth == 0:
			f.Distributors = got
		case l.kind == models.KindReseller:
			f.Resellers = append(f.Resellers, got...)
		default:
			f.Customers = append(f.Customers, got...)
		}
		f.All = append(f.All, got...)
		parents = got
	}
	took := time.Since(t0)
	// Autovacuum would have analyzed a table this size long ago in
	// production; without statistics the first runs measure the planner's
	// guesses about empty tables.
	if _, err := b.st.SQL.ExecContext(ctx, "ANALYZE"); err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	b.logf("%s: %d accounts created in %s (%.0f accounts/s through accounts.Service.Create)",
		label, len(f.All), took.Round(time.Millisecond), float64(len(f.All))/took.Seconds())
	return f, nil
}

func kindWord(k models.AccountKind) string {
	switch k {
	case models.KindDistributor:
		return "Distribution"
	case models.KindReseller:
		return "Solutions"
	}
	return "Customer"
}

// createAll creates the accounts of specs, a few at a time, and returns
// their ids in the order of specs.
func (b *bench) createAll(ctx context.Context, specs []accounts.CreateInput, prog *progress) ([]int64, error) {
	out := make([]int64, len(specs))
	next := make(chan int)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for w := 0; w < creators; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				a, err := b.accounts.Create(b.platform, specs[i])
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("create %s %q: %w", specs[i].Kind, specs[i].Name, err)
					}
					mu.Unlock()
					continue
				}
				out[i] = a.ID
				prog.add(1)
			}
		}()
	}
	for i := range specs {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed || ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return out, nil
}

// distributorFixture is one distributor and the customers directly under it.
type distributorFixture struct {
	Distributor int64
	Customers   []int64
}

// customersFixture returns the distributor with 1,000 customers that the
// ingest and allocate scenarios both use, creating it the first time.
func (b *bench) customersFixture(ctx context.Context) (*distributorFixture, error) {
	if b.customers1k != nil {
		return b.customers1k, nil
	}
	t, err := b.buildTree(ctx, "distributor + 1,000 customers", 1, 1, level{models.KindCustomer, 1000})
	if err != nil {
		return nil, err
	}
	b.customers1k = &distributorFixture{Distributor: t.Distributors[0], Customers: t.Customers}
	return b.customers1k, nil
}

// gid is an account's global ID.
func gid(id int64) string { return ids.Encode("Account", id) }
