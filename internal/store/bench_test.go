package store_test

import (
	"testing"

	"github.com/sanwatch/sanwatch/internal/store/storetest"
)

// BenchmarkAppendSamples reports samples/s stored by each store, in batches
// of 5,000 new samples.
func BenchmarkAppendSamples(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { storetest.BenchAppendSamples(b, openSQLite(b)) })
	b.Run("postgres", func(b *testing.B) { storetest.BenchAppendSamples(b, openPostgres(b)) })
}
