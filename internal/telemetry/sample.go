// Package telemetry holds the sample type sanwatch stores and the streaming
// parsers for the batch formats boxes send (CSV and JSON Lines, optionally
// gzip-compressed).
package telemetry

import "time"

// Sample is one measurement: at Time, the Component of Box reported Metric = Value.
type Sample struct {
	Time      time.Time `json:"time"`
	Box       string    `json:"box"`
	Component string    `json:"component"`
	Metric    string    `json:"metric"`
	Value     float64   `json:"value"`
}

// Metric names of the catalogue. Units are part of the name. Metrics not in
// this list are stored too and handed to external analyzers.
const (
	PoolUsedBytes          = "pool.used_bytes"
	PoolTotalBytes         = "pool.total_bytes"
	VolumeReadLatencyMs    = "volume.read_latency_ms"
	VolumeWriteLatencyMs   = "volume.write_latency_ms"
	VolumeIOPS             = "volume.iops"
	NodeCPUBusyPct         = "node.cpu_busy_pct"
	CacheReadHitPct        = "cache.read_hit_pct"
	CacheWritePendingPct   = "cache.write_pending_pct"
	DiskReallocatedSectors = "disk.reallocated_sectors"
	DiskPendingSectors     = "disk.pending_sectors"
	DiskMediaErrors        = "disk.media_errors"
	DiskTemperatureC       = "disk.temperature_c"
	DiskWearPct            = "disk.wear_pct"
	PortCRCErrors          = "port.crc_errors"
	PortLinkResets         = "port.link_resets"
	BatteryChargePct       = "battery.charge_pct"
	ReplicationLagS        = "replication.lag_s"

	// SMART counters and gauges beyond the core set (ATA attribute ids and
	// NVMe health-log fields in the comments).
	DiskReportedUncorrectable = "disk.reported_uncorrectable" // ATA 187
	DiskCommandTimeouts       = "disk.command_timeouts"       // ATA 188
	DiskOfflineUncorrectable  = "disk.offline_uncorrectable"  // ATA 198
	DiskUDMACRCErrors         = "disk.udma_crc_errors"        // ATA 199
	DiskPowerOnHours          = "disk.power_on_hours"         // ATA 9, NVMe power_on_hours
	DiskAvailableSparePct     = "disk.available_spare_pct"    // NVMe available_spare
	DiskFailed                = "disk.failed"                 // 1 when the box reports the drive failed
)

// Catalogue lists the metrics sanwatch knows, in a fixed order.
var Catalogue = []string{
	PoolUsedBytes, PoolTotalBytes, VolumeReadLatencyMs, VolumeWriteLatencyMs,
	VolumeIOPS, NodeCPUBusyPct, CacheReadHitPct, CacheWritePendingPct,
	DiskReallocatedSectors, DiskPendingSectors, DiskMediaErrors, DiskTemperatureC,
	DiskWearPct, PortCRCErrors, PortLinkResets, BatteryChargePct, ReplicationLagS,
	DiskReportedUncorrectable, DiskCommandTimeouts, DiskOfflineUncorrectable, DiskUDMACRCErrors,
	DiskPowerOnHours, DiskAvailableSparePct, DiskFailed,
}
