// Command ferretdb-embedded runs FerretDB v1 in-process (SQLite or PostgreSQL backend), for
// development and tests. It exists because MongoDB's own server cannot be installed on our
// machines, and FerretDB's cmd/ferretdb panics without its generated version file; the
// embeddable package does not need it and keeps telemetry off.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	handler := flag.String("handler", "sqlite", "backend: sqlite or postgresql")
	dataDir := flag.String("data", "data", "directory for the SQLite databases (sqlite)")
	postgresURL := flag.String("postgresql-url", "", "PostgreSQL connection string (postgresql)")
	sqliteSync := flag.String("sqlite-sync", "normal", "SQLite synchronous pragma: normal or full")
	logLevel := flag.String("log-level", "warn", "debug, info, warn or error")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "bad -log-level: %v\n", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	abs, err := filepath.Abs(*dataDir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bad -data: %v\n", err)
		os.Exit(2)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "cannot create %s: %v\n", abs, err)
		os.Exit(1)
	}

	config := &ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: *listen},
		Logger:   logger,
		Handler:  *handler,
	}
	switch *handler {
	case "sqlite":
		// WAL with synchronous=NORMAL: a commit is not fsynced, so a FerretDB process crash
		// loses nothing committed (only a power loss could), and updates stop costing one fsync
		// each (measured: a replace of an existing document 58 ms with FULL).
		config.SQLiteURL = "file:" + abs + "/?_pragma=synchronous(" + *sqliteSync + ")"
	case "postgresql":
		if *postgresURL == "" {
			fmt.Fprintln(os.Stderr, "-postgresql-url is required with -handler postgresql")
			os.Exit(2)
		}
		config.PostgreSQLURL = *postgresURL
	default:
		fmt.Fprintf(os.Stderr, "bad -handler %q: sqlite or postgresql\n", *handler)
		os.Exit(2)
	}
	f, err := ferretdb.New(config)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: %v\n", err)
		os.Exit(1)
	}

	// Stop on SIGTERM/SIGINT: Run returns after closing the listener, connections and SQLite.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	done := make(chan struct{})
	go func() {
		_ = f.Run(ctx)
		close(done)
	}()
	// Printed once the listener is bound, so a parent can read the real address.
	fmt.Printf("ready %s\n", f.MongoDBURI())
	<-done
}
