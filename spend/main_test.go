package spend_test

import (
	"log/slog"
	"os"
	"testing"
)

// TestMain turns on the debug log (ingestion step timings) when SPEND_DEBUG
// is set.
func TestMain(m *testing.M) {
	if os.Getenv("SPEND_DEBUG") != "" {
		slog.SetLogLoggerLevel(slog.LevelDebug)
	}
	os.Exit(m.Run())
}
