package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

func TestScheduleProblem(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	every15 := func(times ...time.Duration) []time.Time {
		var out []time.Time
		for _, d := range times {
			out = append(out, ago(d))
		}
		return out
	}
	tests := []struct {
		name string
		s    scheduleState
		want string
	}{
		{
			name: "scans on time",
			s: scheduleState{id: "fleet-15m", interval: 15 * time.Minute, created: ago(48 * time.Hour), lastCompleted: ago(10 * time.Minute),
				recent: every15(45*time.Minute, 30*time.Minute, 15*time.Minute)},
		},
		{
			name: "no completed scan for more than 3 intervals",
			s:    scheduleState{id: "fleet-15m", interval: 15 * time.Minute, created: ago(48 * time.Hour), lastCompleted: ago(52 * time.Minute)},
			want: "schedule fleet-15m: last scan completed 52m ago, more than 3 intervals (every 15m) (runs skipped for overlap 0, missed the catch-up window 0)",
		},
		{
			name: "never completed since created",
			s:    scheduleState{id: "fleet-1h", interval: time.Hour, created: ago(200 * time.Minute)},
			want: "schedule fleet-1h: no scan completed in the 3h20m since it was created (every 1h) (runs skipped for overlap 0, missed the catch-up window 0)",
		},
		{
			name: "new schedule, nothing completed yet",
			s:    scheduleState{id: "fleet-1h", interval: time.Hour, created: ago(30 * time.Minute)},
		},
		{
			name: "recreated: an old completion does not count against it",
			s:    scheduleState{id: "fleet-1h", interval: time.Hour, created: ago(time.Hour), lastCompleted: ago(30 * time.Hour)},
		},
		{
			name: "paused schedules are not late",
			s:    scheduleState{id: "fleet-15m", paused: true, interval: 15 * time.Minute, created: ago(48 * time.Hour), lastCompleted: ago(5 * time.Hour)},
		},
		{
			name: "a scan running longer than its interval",
			s: scheduleState{id: "fleet-15m", interval: 15 * time.Minute, created: ago(48 * time.Hour), lastCompleted: ago(20 * time.Minute),
				running: []runningScan{{id: "scan-fleet-15m-2026-11-30T11:40:00Z", since: ago(20 * time.Minute)}}, skippedOverlap: 1},
			want: "schedule fleet-15m: scan scan-fleet-15m-2026-11-30T11:40:00Z running for 20m, longer than its interval 15m: " +
				"the runs due meanwhile are skipped (runs skipped for overlap 1, missed the catch-up window 0)",
		},
		{
			name: "a scan running within its interval",
			s: scheduleState{id: "fleet-15m", interval: 15 * time.Minute, created: ago(48 * time.Hour), lastCompleted: ago(20 * time.Minute),
				running: []runningScan{{id: "scan-x", since: ago(5 * time.Minute)}}},
		},
		{
			name: "runs skipped recently",
			s: scheduleState{id: "fleet-15m", interval: 15 * time.Minute, created: ago(48 * time.Hour), lastCompleted: ago(10 * time.Minute),
				recent: every15(90*time.Minute, 30*time.Minute, 15*time.Minute), skippedOverlap: 2, missedCatchup: 1},
			want: "schedule fleet-15m: no run between 2026-11-30T10:30:00Z and 2026-11-30T11:30:00Z (every 15m) (runs skipped for overlap 2, missed the catch-up window 1)",
		},
		{
			name: "skips long ago, regular runs since",
			s: scheduleState{id: "fleet-15m", interval: 15 * time.Minute, created: ago(48 * time.Hour), lastCompleted: ago(10 * time.Minute),
				recent: every15(45*time.Minute, 30*time.Minute, 15*time.Minute), skippedOverlap: 7, missedCatchup: 3},
		},
		{
			name: "a gap without skips is a pause, not a problem",
			s: scheduleState{id: "fleet-15m", interval: 15 * time.Minute, created: ago(48 * time.Hour), lastCompleted: ago(10 * time.Minute),
				recent: every15(5*time.Hour, 15*time.Minute)},
		},
		{
			name: "unknown interval is not judged",
			s:    scheduleState{id: "odd", created: ago(48 * time.Hour)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.s.problem(now))
		})
	}
}

func TestScheduleInterval(t *testing.T) {
	at := func(h int) time.Time { return time.Date(2026, 11, 30, h, 0, 0, 0, time.UTC) }
	tests := []struct {
		name string
		d    client.ScheduleDescription
		want time.Duration
	}{
		{"every", client.ScheduleDescription{Schedule: client.Schedule{Spec: &client.ScheduleSpec{
			Intervals: []client.ScheduleIntervalSpec{{Every: time.Hour}, {Every: 15 * time.Minute}}}}}, 15 * time.Minute},
		{"cron: the longest gap of the next runs", client.ScheduleDescription{
			Schedule: client.Schedule{Spec: &client.ScheduleSpec{CronExpressions: []string{"0 6,8,14 * * *"}}},
			Info:     client.ScheduleInfo{NextActionTimes: []time.Time{at(6), at(8), at(14)}}}, 6 * time.Hour},
		{"nothing to go by", client.ScheduleDescription{}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, scheduleInterval(&tc.d))
		})
	}
}

func TestParseBackfill(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, from, to, overlap string
		want                    client.ScheduleBackfill
		wantErr                 string
	}{
		{name: "RFC 3339", from: "2026-11-29T06:00:00Z", to: "2026-11-29T12:00:00+01:00", overlap: "buffer-all",
			want: client.ScheduleBackfill{Start: time.Date(2026, 11, 29, 6, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 29, 11, 0, 0, 0, time.UTC),
				Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ALL}},
		{name: "dates and minutes in UTC", from: "2026-11-28", to: "2026-11-29T06:30", overlap: "skip",
			want: client.ScheduleBackfill{Start: time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 29, 6, 30, 0, 0, time.UTC),
				Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP}},
		{name: "missing from", to: "2026-11-29", overlap: "skip",
			wantErr: "--from is required: a time such as 2026-11-24T06:00:00Z or 2026-11-24 (UTC)"},
		{name: "not a time", from: "yesterday", to: "2026-11-29", overlap: "skip",
			wantErr: `--from "yesterday": want a time such as 2026-11-24T06:00:00Z or 2026-11-24 (UTC)`},
		{name: "bad to", from: "2026-11-28", to: "29/11/2026", overlap: "skip",
			wantErr: `--to "29/11/2026": want a time such as 2026-11-24T06:00:00Z or 2026-11-24 (UTC)`},
		{name: "reversed", from: "2026-11-29", to: "2026-11-28", overlap: "skip",
			wantErr: "--from 2026-11-29T00:00:00Z is not before --to 2026-11-28T00:00:00Z"},
		{name: "empty range", from: "2026-11-29", to: "2026-11-29T00:00:00Z", overlap: "skip",
			wantErr: "--from 2026-11-29T00:00:00Z is not before --to 2026-11-29T00:00:00Z"},
		{name: "future", from: "2026-11-29", to: "2026-12-01", overlap: "skip",
			wantErr: "--to 2026-12-01T00:00:00Z is in the future: backfill runs the scans that were due in the past"},
		{name: "bad overlap", from: "2026-11-28", to: "2026-11-29", overlap: "sometimes",
			wantErr: `--overlap "sometimes": want one of skip, buffer-one, buffer-all, cancel-other, terminate-other, allow-all`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseBackfill(tc.from, tc.to, tc.overlap, now)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.True(t, tc.want.Start.Equal(got.Start), got.Start)
			require.True(t, tc.want.End.Equal(got.End), got.End)
			require.Equal(t, tc.want.Overlap, got.Overlap)
		})
	}
}
