package simulate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// series is one simulated metric of one component, a value per sample index.
type series struct {
	component string
	metric    string
	values    []float64
}

// gen draws one box's series. Healthy values stay well inside the analyzers'
// thresholds and faulty ones well outside (see the contract table in the
// package tests).
type gen struct {
	r       *rand.Rand
	o       Options
	b       *boxPlan
	n       int
	days    []float64 // days since the first sample
	diurnal []float64 // daily cycle in [-1, 1], peaking mid-afternoon (box-local)
	out     []series
}

func newGen(o Options, b *boxPlan) *gen {
	g := &gen{
		r: rand.New(rand.NewPCG(uint64(o.Seed), 0x9e3779b97f4a7c15^uint64(b.index+1))),
		o: o,
		b: b,
		n: o.points(),
	}
	shift := g.u(-1, 1) // hours
	t0 := o.timeAt(0)
	g.days = make([]float64, g.n)
	g.diurnal = make([]float64, g.n)
	for i := range g.n {
		t := o.timeAt(i)
		g.days[i] = t.Sub(t0).Hours() / 24
		h := float64(t.Unix()%86400) / 3600
		g.diurnal[i] = math.Sin(2 * math.Pi * (h - 8 - shift) / 24)
	}
	return g
}

// u returns a uniform value in [lo, hi).
func (g *gen) u(lo, hi float64) float64 { return lo + (hi-lo)*g.r.Float64() }

// faulty reports whether the box's fault is of kind on component.
func (g *gen) faulty(kind, component string) bool {
	f := g.b.fault
	return f != nil && f.Kind == kind && f.Component == component
}

func (g *gen) add(component, metric string, values []float64) {
	g.out = append(g.out, series{component: component, metric: metric, values: values})
}

func (g *gen) series() []float64 { return make([]float64, g.n) }

// weak reports whether the box's fault is injected below the thresholds.
func (g *gen) weak() bool { return g.b.fault != nil && g.b.fault.BelowThreshold }

// generate returns every series of box b, in a fixed order.
func generate(o Options, b *boxPlan) []series {
	g := newGen(o, b)
	g.pools()
	g.volumes()
	g.disks()
	g.ports()
	g.nodes()
	g.batteries()
	g.replication()
	if o.Benign {
		g.benign()
	}
	return g.out
}

// pools: healthy used 31-75% of total growing at most 0.3%/day; a capacity
// fault is a straight line reaching 80-88% at the end and 100% 3-10 days
// later. Noise is +-0.03% of total.
func (g *gen) pools() {
	dEnd := g.days[g.n-1]
	for _, name := range poolNames {
		total := float64(50+g.r.IntN(451)) * (1 << 40)
		used, tot := g.series(), g.series()
		if g.faulty(finding.RuleCapacity, name) {
			daysToFull := g.u(3, 10)
			fEnd := g.u(0.80, 0.88)
			if g.weak() {
				daysToFull, fEnd = g.u(40, 80), g.u(0.55, 0.7) // full in months: plan, do not page
			}
			slope := (1 - fEnd) / daysToFull
			for i := range g.n {
				f := max(0.05, fEnd-slope*(dEnd-g.days[i])) + g.u(-3e-4, 3e-4)
				used[i] = math.Round(f * total)
			}
		} else {
			f0 := g.u(0.31, 0.70)
			growth := g.u(0, 0.003)
			if f0+growth*dEnd > 0.745 {
				growth = max(0, (0.745-f0)/dEnd)
			}
			for i := range g.n {
				f := f0 + growth*g.days[i] + g.u(-3e-4, 3e-4)
				used[i] = math.Round(f * total)
			}
		}
		for i := range g.n {
			tot[i] = total
		}
		g.add(name, telemetry.PoolUsedBytes, used)
		g.add(name, telemetry.PoolTotalBytes, tot)
	}
}

// volumes: read 0.5-2 ms, write 0.3-1.5 ms, +-10% noise, up to +-15% diurnal.
// A latency fault multiplies one of them by 5-8 from onset, on a baseline of
// at least 1.2 ms so the rise clears the analyzer's 2 ms minimum delta.
func (g *gen) volumes() {
	for _, name := range volumeNames {
		readBase, writeBase := g.u(0.5, 2.0), g.u(0.3, 1.5)
		iopsBase := g.u(500, 10000)
		amp := g.u(0.05, 0.15)
		faulty := g.faulty(finding.RuleLatency, name)
		factor := 1.0
		if faulty {
			factor = g.u(5, 8)
			if g.weak() {
				factor = g.u(1.2, 1.5) // slower, not broken
			}
			if g.b.metric == telemetry.VolumeReadLatencyMs {
				readBase = g.u(1.2, 2.0)
			} else {
				writeBase = g.u(1.2, 1.5)
			}
		}
		rd, wr, iops := g.series(), g.series(), g.series()
		for i := range g.n {
			d := 1 + amp*g.diurnal[i]
			r := readBase * d * g.u(0.9, 1.1)
			w := writeBase * d * g.u(0.9, 1.1)
			if faulty && i >= g.b.onset {
				if g.b.metric == telemetry.VolumeReadLatencyMs {
					r *= factor
				} else {
					w *= factor
				}
			}
			rd[i] = roundTo(r, 3)
			wr[i] = roundTo(w, 3)
			iops[i] = math.Round(iopsBase * (1 + 2*amp*g.diurnal[i]) * g.u(0.9, 1.1))
		}
		g.add(name, telemetry.VolumeReadLatencyMs, rd)
		g.add(name, telemetry.VolumeWriteLatencyMs, wr)
		g.add(name, telemetry.VolumeIOPS, iops)
	}
}

// disks: reallocated sectors constant 0-8, pending 0, media errors constant
// 0-3, temperature 30-42 C +-0.5; SSDs report wear 5-59% rising 0.002%/day.
// A disk failure fault adds 5-10 reallocated sectors every 1-3 h from onset
// (at least 5 steps) and raises pending sectors by one per step up to 1-8.
// A wear fault puts the SSD at 88-93% at onset, rising 0.5%/day throughout.
func (g *gen) disks() {
	for d := range diskCount {
		name := fmt.Sprintf("disk/%d", d)
		realloc := float64(g.r.IntN(9))
		media := float64(g.r.IntN(4))
		temp := g.u(30, 42)
		re, pe, me, te := g.series(), g.series(), g.series(), g.series()

		next, gap, target := -1, 0, 0
		weakDisk := false
		if g.faulty(finding.RuleDiskFailure, name) {
			left := g.n - 1 - g.b.onset
			gap = int(g.u(1, 3) * float64(time.Hour) / float64(g.o.Interval))
			gap = max(1, min(gap, left/4))
			target = 1 + g.r.IntN(8)
			next = g.b.onset
			if weakDisk = g.weak(); weakDisk {
				gap, target = g.n, 0 // one sector remapped once, nothing pending
			}
		}
		pending := 0
		for i := range g.n {
			if i == next {
				step := float64(5 + g.r.IntN(6))
				if weakDisk {
					step = 1
				}
				realloc += step
				pending = min(target, pending+1)
				next += gap
			}
			re[i] = realloc
			pe[i] = float64(pending)
			me[i] = media
			te[i] = roundTo(temp+g.u(-0.5, 0.5), 1)
		}
		g.add(name, telemetry.DiskReallocatedSectors, re)
		g.add(name, telemetry.DiskPendingSectors, pe)
		g.add(name, telemetry.DiskMediaErrors, me)
		g.add(name, telemetry.DiskTemperatureC, te)

		if d < ssdCount {
			wear := g.series()
			if g.faulty(finding.RuleSSDWear, name) {
				w0, rate := g.u(88, 93), 0.5
				if g.weak() {
					w0, rate = g.u(60, 70), 0.05 // years of life left
				}
				at := g.days[g.b.onset]
				for i := range g.n {
					wear[i] = roundTo(min(100, max(0, w0+rate*(g.days[i]-at))), 3)
				}
			} else {
				w0 := g.u(5, 59)
				for i := range g.n {
					wear[i] = roundTo(w0+0.002*g.days[i], 3)
				}
			}
			g.add(name, telemetry.DiskWearPct, wear)
		}
	}
}

// rare returns the sample indexes of a counter that increments at most once
// per 12 hours: candidates 12-24 h apart, each kept with probability p.
func (g *gen) rare(p float64) []bool {
	per12h := max(1, int(12*time.Hour/g.o.Interval))
	ev := make([]bool, g.n)
	for pos := g.r.IntN(per12h); pos < g.n; pos += per12h + g.r.IntN(per12h) {
		ev[pos] = g.r.Float64() < p
	}
	return ev
}

// ports: CRC and link-reset counters that increment at most once per 12 h;
// one healthy port in four resets both counters to 0 once. A port fault
// adds 10-50 CRC errors every interval from onset.
func (g *gen) ports() {
	for _, name := range portNames {
		crc := float64(g.r.IntN(200))
		links := float64(g.r.IntN(5))
		crcInc, linkInc := g.rare(0.5), g.rare(0.2)
		reset := -1
		if g.r.Float64() < 0.25 {
			reset = g.r.IntN(g.n)
		}
		faulty := g.faulty(finding.RulePortErrors, name)
		cv, lv := g.series(), g.series()
		for i := range g.n {
			if i == reset && !faulty {
				crc, links = 0, 0
			}
			switch {
			case faulty && i >= g.b.onset && g.weak():
				if i%6 == 0 {
					crc++ // an error every half hour: worth a look, not a page
				}
			case faulty && i >= g.b.onset:
				crc += float64(10 + g.r.IntN(41))
			case crcInc[i]:
				crc++
			}
			if linkInc[i] {
				links++
			}
			cv[i], lv[i] = crc, links
		}
		g.add(name, telemetry.PortCRCErrors, cv)
		g.add(name, telemetry.PortLinkResets, lv)
	}
}

// nodes: CPU busy 20-58% with a daily cycle, read hit 83-97%, write pending
// 6-28%. A saturation fault holds the CPU at 92-99% from onset.
func (g *gen) nodes() {
	for k := range nodeCount {
		name := fmt.Sprintf("node/%d", k)
		cpuBase, cpuAmp := g.u(35, 43), g.u(4, 12)
		hit, pending := g.u(85, 95), g.u(12, 22)
		sat := g.faulty(finding.RuleSaturation, name)
		cpu, hv, pv := g.series(), g.series(), g.series()
		for i := range g.n {
			c := cpuBase + cpuAmp*g.diurnal[i] + g.u(-3, 3)
			if sat && i >= g.b.onset {
				c = g.u(92, 99)
				if g.weak() {
					c = g.u(78, 87)
				}
			}
			cpu[i] = roundTo(c, 2)
			hv[i] = roundTo(hit+g.u(-2, 2), 2)
			pv[i] = roundTo(pending+3*g.diurnal[i]+g.u(-3, 3), 2)
		}
		g.add(name, telemetry.NodeCPUBusyPct, cpu)
		g.add(name, telemetry.CacheReadHitPct, hv)
		g.add(name, telemetry.CacheWritePendingPct, pv)
	}
}

// ramp returns how many samples a fault takes to reach its level: at most
// maxPts and at most a third of the samples from onset to the end.
func (g *gen) ramp(maxPts int) int {
	return max(1, min(maxPts, (g.n-g.b.onset)/3))
}

// batteries: charge 96-100%. A battery fault drains it within an hour of
// onset to 11-39% and holds it there.
func (g *gen) batteries() {
	for k := range batteryCount {
		name := fmt.Sprintf("battery/%d", k)
		base := g.u(97, 99)
		faulty := g.faulty(finding.RuleCacheBattery, name)
		low, steps := 0.0, 0
		if faulty {
			low = g.u(12, 38)
			if g.weak() {
				low = g.u(58, 70)
			}
			steps = g.ramp(int(time.Hour / g.o.Interval))
		}
		v := g.series()
		for i := range g.n {
			level := base
			if faulty && i >= g.b.onset {
				level = low
				if k := i - g.b.onset; k < steps {
					level = base + (low-base)*float64(k+1)/float64(steps)
				}
			}
			v[i] = roundTo(min(100, level+g.u(-1, 1)), 1)
		}
		g.add(name, telemetry.BatteryChargePct, v)
	}
}

// replication: lag 7-52 s on replicated boxes. A lag fault climbs within two
// hours of onset to 1800-7200 s (+-10%) and stays there.
func (g *gen) replication() {
	if g.b.group == "" {
		return
	}
	name := "replication/" + g.b.group
	base := g.u(10, 40)
	faulty := g.faulty(finding.RuleReplicationLag, name)
	high, steps := 0.0, 0
	if faulty {
		high = g.u(1800, 7200)
		if g.weak() {
			high = g.u(300, 700) // behind, within the RPO
		}
		steps = g.ramp(int(2 * time.Hour / g.o.Interval))
	}
	v := g.series()
	for i := range g.n {
		lag := base * g.u(0.7, 1.3)
		if faulty && i >= g.b.onset {
			level := high
			if k := i - g.b.onset; k < steps {
				level = base + (high-base)*float64(k+1)/float64(steps)
			}
			lag = level * g.u(0.9, 1.1)
		}
		v[i] = roundTo(lag, 1)
	}
	g.add(name, telemetry.ReplicationLagS, v)
}
