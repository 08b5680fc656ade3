package analysis

import (
	"context"
	"testing"

	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// BenchmarkAnalyzeBox analyses one realistic box: 100 series of 576 points
// (48 h at 5 min) with a capacity and a latency fault.
func BenchmarkAnalyzeBox(b *testing.B) {
	bx := healthyBox().
		set("pool/ssd_r6", telemetry.PoolUsedBytes, fillingPool(onsetIndex, 5)).
		set("volume/vol03", telemetry.VolumeReadLatencyMs, latencySeries(1, 5, onsetIndex))
	w := bx.window(fleet.Box{Model: "SW-7000", Firmware: "4.2.3"})
	e, err := New(Options{Advisories: testAdvisories(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Analyze(context.Background(), w); err != nil {
			b.Fatal(err)
		}
	}
}
