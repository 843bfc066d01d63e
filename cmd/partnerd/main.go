// Command partnerd is the Partner Center backend: one binary whose
// subcommands run the API, the background workers and the scheduler together
// or apart, apply migrations, bootstrap the platform and load demo data
// (RUNNING.md).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // billing months are computed in BILLING_TIMEZONE on any host
)

const usage = `partnerd — the Partner Center backend

Usage:
  partnerd serve [--demo] [--no-migrate]   API, workers and scheduler in one process
  partnerd api                             the GraphQL API only
  partnerd worker                          background workers and the outbox relay only
  partnerd scheduler                       periodic jobs only (safe to run twice)
  partnerd migrate                         apply pending schema migrations and exit
  partnerd bootstrap --email EMAIL [--name NAME]
                                           create the platform and its admin; print a new token
  partnerd seed                            load the demo tree

Configuration comes from the environment; see RUNNING.md.
`

func main() {
	os.Exit(run(os.Args[1:], osEnv, os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code (2 for bad
// usage or configuration, 1 for a failure at run time).
func run(args []string, lookup env, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, rest := args[0], args[1:]
	fs := flag.NewFlagSet("partnerd "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	demo := fs.Bool("demo", false, "serve: load demo data into an empty database and print a token")
	noMigrate := fs.Bool("no-migrate", false, "serve: do not apply pending migrations")
	email := fs.String("email", "", "bootstrap: the platform admin's email")
	name := fs.String("name", "", "bootstrap: the platform account's name")
	switch cmd {
	case "serve", "api", "worker", "scheduler", "migrate", "bootstrap", "seed":
	default:
		fmt.Fprintf(stderr, "partnerd: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err := fs.Parse(rest); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "partnerd %s: unexpected argument %q\n", cmd, fs.Arg(0))
		return 2
	}
	if cmd == "bootstrap" && *email == "" {
		fmt.Fprintln(stderr, "partnerd bootstrap: --email is required")
		return 2
	}
	cfg, err := loadConfig(lookup)
	if err != nil {
		fmt.Fprintf(stderr, "partnerd: %v\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	switch cmd {
	case "migrate":
		err = migrate(ctx, cfg, log)
	case "bootstrap":
		err = bootstrap(ctx, cfg, log, *email, *name, stdout)
	case "seed":
		err = seed(ctx, cfg, log, stdout)
	case "serve":
		err = serve(ctx, cfg, log, roles{api: true, worker: true, scheduler: true}, !*noMigrate, *demo, stdout)
	case "api":
		err = serve(ctx, cfg, log, roles{api: true}, false, false, stdout)
	case "worker":
		err = serve(ctx, cfg, log, roles{worker: true}, false, false, stdout)
	case "scheduler":
		err = serve(ctx, cfg, log, roles{scheduler: true}, false, false, stdout)
	}
	if err != nil {
		var ce *configError
		if errors.As(err, &ce) {
			fmt.Fprintf(stderr, "partnerd: %v\n", ce)
			return 2
		}
		log.Error("partnerd "+cmd+" failed", "err", err)
		return 1
	}
	return 0
}

func newLogger(cfg *config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
