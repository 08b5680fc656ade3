package simulate

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// benign lays the patterns of healthy real fleets over the box's series:
// what a rule shaped to a clean simulator would mistake for a fault.
//
//   - weekly cycle: latency, IOPS and CPU lower at weekends;
//   - nightly backup: on 40% of boxes one volume's write latency is 4-7x
//     and its IOPS 3x for two hours every night from 22:00 or 23:00;
//   - bursts: a latency spike of 3x for one or two points, now and then;
//   - thin-provisioned growth with deletes: on a third of the pools, +1-2%
//     of the pool written from 08:00 to 20:00 and deleted by midnight;
//   - noisy sensors: disk temperature +-1.5 C, and a +8 C glitch a day;
//   - counter resets: one healthy disk in twenty is replaced (its
//     reallocated count drops to 0);
//   - gaps in reporting: see gapsOf.
//
// The components a fault is injected on keep their faulty shape. A stream
// of its own drives it, so the faults are the same with and without it.
func (g *gen) benign() {
	r := rand.New(rand.NewPCG(uint64(g.o.Seed)^0xbe9191, uint64(g.b.index)+7))
	f := g.b.fault
	faultyComp := func(c string) bool { return f != nil && f.Component == c }
	backup := ""
	if r.Float64() < 0.4 {
		if v := volumeNames[r.IntN(len(volumeNames))]; !faultyComp(v) {
			backup = v
		}
	}
	backupFrom, backupMult := 22+r.IntN(2), 4+3*r.Float64()
	totals := map[string]float64{}
	for _, s := range g.out {
		if s.metric == telemetry.PoolTotalBytes {
			totals[s.component] = s.values[0]
		}
	}
	hourOf := func(i int) (time.Time, float64) {
		t := g.o.timeAt(i)
		return t, float64(t.Hour()) + float64(t.Minute())/60
	}
	inBackup := func(h float64) bool {
		d := math.Mod(h-float64(backupFrom)+24, 24)
		return d < 2
	}
	for k := range g.out {
		s := &g.out[k]
		if faultyComp(s.component) {
			continue
		}
		v := s.values
		switch s.metric {
		case telemetry.VolumeReadLatencyMs, telemetry.VolumeWriteLatencyMs, telemetry.VolumeIOPS, telemetry.NodeCPUBusyPct:
			for i := range v {
				t, h := hourOf(i)
				if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
					switch s.metric {
					case telemetry.VolumeIOPS:
						v[i] = math.Round(v[i] * 0.6)
					case telemetry.NodeCPUBusyPct:
						v[i] = roundTo(v[i]*0.85, 2)
					default:
						v[i] = roundTo(v[i]*0.9, 3)
					}
				}
				if s.component == backup && inBackup(h) {
					switch s.metric {
					case telemetry.VolumeWriteLatencyMs:
						v[i] = roundTo(v[i]*backupMult, 3)
					case telemetry.VolumeReadLatencyMs:
						v[i] = roundTo(v[i]*1.5, 3)
					case telemetry.VolumeIOPS:
						v[i] = math.Round(v[i] * 3)
					}
				}
			}
			if s.metric == telemetry.VolumeReadLatencyMs || s.metric == telemetry.VolumeWriteLatencyMs {
				for i := 0; i < len(v); i++ {
					if r.Float64() < 1.0/250 {
						for j := i; j < min(len(v), i+1+r.IntN(2)); j++ {
							v[j] = roundTo(v[j]*3, 3)
						}
						i += 2
					}
				}
			}
		case telemetry.PoolUsedBytes:
			if r.Float64() >= 0.35 || totals[s.component] == 0 {
				continue
			}
			amp := (0.01 + 0.01*r.Float64()) * totals[s.component]
			for i := range v {
				_, h := hourOf(i)
				var x float64
				switch {
				case h >= 8 && h < 20:
					x = (h - 8) / 12
				case h >= 20:
					x = (24 - h) / 4
				}
				v[i] = math.Round(v[i] + amp*x)
			}
		case telemetry.DiskTemperatureC:
			perDay := max(1, int(24*time.Hour/g.o.Interval))
			for i := range v {
				v[i] = roundTo(v[i]+3*(r.Float64()-0.5), 1)
				if i%perDay == perDay/2 {
					v[i] += 8
				}
			}
		case telemetry.DiskReallocatedSectors:
			if r.Float64() < 0.05 && len(v) > 2 {
				for i := 1 + r.IntN(len(v)-1); i < len(v); i++ {
					v[i] = 0
				}
			}
		}
	}
}

// gapsOf returns the sample indexes a box with benign patterns did not
// report: one box in five misses 30-90 minutes once, in the first 60% of
// its span (a gap at the end would be a silent box, which is a fault).
func gapsOf(o Options, b *boxPlan) []bool {
	r := rand.New(rand.NewPCG(uint64(o.Seed)^0x9a95, uint64(b.index)+3))
	n := o.points()
	if r.Float64() >= 0.2 || n < 40 {
		return nil
	}
	if b.fault != nil && b.fault.Kind == finding.RuleSilentBox {
		return nil
	}
	gaps := make([]bool, n)
	length := max(1, int((30*time.Minute+time.Duration(r.IntN(61))*time.Minute)/o.Interval))
	start := 1 + r.IntN(max(1, n*6/10-length))
	for i := start; i < min(n, start+length); i++ {
		gaps[i] = true
	}
	return gaps
}
