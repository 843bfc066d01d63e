// Package invariants holds no code: it is the home of a seeded, randomized
// test (issue 11 point 5, TigerBeetle's simulator in spirit) that runs
// thousands of concurrent operations against the real services, PostgreSQL
// and Redis, and checks after every round that the money and the tree are
// still sound; and of the deterministic replays of the races it found.
//
// # What TestInvariants runs
//
// It builds a tree through the domain services (testkit's standard tree
// plus a second-level reseller and more customers, tier-1 credit limits,
// allocations and budgets), then plays rounds. Each round draws a batch of
// operations from a seeded random generator — allocate and reverse credit,
// set a tier-1 limit, ingest expenditure records (new ones, replays,
// conflicting replays, rejected ones, and one record sent by two requests
// at once), freeze, unfreeze, set a budget, run the background enforcement
// as a worker does, request and answer unbindings, create and submit
// migration batches, approve, reject or cancel them, execute them
// (sometimes twice at once, as a duplicated worker task), and associate
// personal accounts through an invitation — and runs them all at once, each
// in its own goroutine, each call as its user (authenticated by token, as a
// request is) with a request id of its own. Many are refused on purpose:
// the wrong party, not enough credit, frozen, already in a process.
//
// # What it proves
//
// An in-memory model judges each operation before the round: it must
// succeed, it must be refused, or — when the answer depends on how the
// round interleaves — either. After the round the model is brought forward
// from what the services answered, in the only order those answers allow
// (processes ending; changes that needed the accounts where they were;
// customers moving; what only a customer's new partner could do), and
// then:
//
//  1. no partner has allocated more than its credit limit (DOMAIN.md §3):
//     allocated ≤ limit and allocated = Σ the children's limits, in the
//     stored balances, after every ledger row replayed in order, and in the
//     snapshots taken while the round runs;
//  2. the credit ledger replays, row by row, to the balances each row
//     recorded and to the stored balances;
//  3. Σ expenditure records = the running totals (spend_totals per customer
//     and month, owner_spend_totals per owner and month, with their record
//     counts and voucher totals), and every record belongs to the partner
//     that owned its customer at its usage time;
//  4. every customer has exactly one owner: a parent of a kind it may sit
//     under, a path and depth that follow it, exactly one open
//     parent-history row naming it, and a history without gaps — after
//     each round and, "at every instant", in a REPEATABLE READ snapshot
//     taken when the round starts and whenever one of its operations ends
//     while the others still run;
//  5. no customer is in two open processes (an open migration item, a
//     pending unbinding); an open item is a pending item of a pending or
//     executing batch from the customer's current partner, and a pending
//     unbinding is with the customer's current partner — also in the
//     snapshots;
//
// and: the model's accounts (kind, parent, status, credit, budget), parent
// histories, running totals, holds, batches and unbindings equal the
// database's; a refused call wrote nothing (no audit, outbox, ledger or
// control-change row with its request id); every ledger row of the round
// comes from a call that succeeded, and an allocation, reversal or limit
// wrote exactly its one row; no call failed with anything but a domain
// refusal (INTERNAL is a failure); the purchase guard rows equal their
// inputs; a customer flagged in arrears has a negative available credit; a
// personal account holds no credit and is never flagged in arrears.
//
// # The races it found
//
// TestRace_AllocationDuringUnbinding, TestRace_AllocationDuringMigration
// and TestRace_IngestionDuringUnbinding replay, deterministically, the
// interleavings behind the failures TestInvariants reports (a violation
// names the one it probably is). Each orders two concurrent calls by
// holding a credit row in a transaction of its own.
//
// # Running it
//
// The seed is random unless INVARIANTS_SEED is set; the test logs it and
// every failure says "replay with INVARIANTS_SEED=<n>". The same seed draws
// the same first round; later rounds draw the same operations as long as
// the races of the earlier ones ended the same way. A failure reports the
// round, its operations with the model's verdict, and what each call
// answered.
//
//	go test -race -count=1 ./invariants/ -v
//	INVARIANTS_SEED=42 go test -count=1 ./invariants/ -run TestInvariants -v
//
// INVARIANTS_OPS sets the number of operations (default 800: 16 rounds,
// about 30 s with -race on a 2-core machine busy with other builds, a third
// of that on an idle one) and INVARIANTS_ROUND how many run at once per
// round (default 50). A long run, 100,000 operations in 2,000 rounds (20
// minutes to an hour, depending on the machine's load):
//
//	INVARIANTS_OPS=100000 go test -count=1 -timeout 0 ./invariants/ -run TestInvariants -v
//
// The store's clock starts on 2 June 2026 at noon in Beijing, moves one
// microsecond at every reading and one minute between rounds, so a run of
// up to 40,000 rounds stays in one billing month.
package invariants
