package workflows

import (
	"slices"

	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/sanwatch/sanwatch/activities"
)

// versions are the branches of bounded-payloads that workflow tests run on:
// the old one must keep behaving as it did, for histories still running.
var versions = []struct {
	name string
	v    workflow.Version
}{
	{"old", workflow.DefaultVersion},
	{"bounded", 1},
}

// pinVersion makes GetVersion(bounded-payloads) return v.
func pinVersion(env *testsuite.TestWorkflowEnvironment, v workflow.Version) {
	env.OnGetVersion(changeBoundedPayloads, workflow.DefaultVersion, 1).Return(v)
}

// shardResult is what the real AnalyzeShard returns for a shard of analysed
// boxes with these findings, under in's options: references to the findings,
// or counts of them (CountsOnly) and remediations (Dispatch).
func shardResult(in activities.AnalyzeShardInput, analysed int, refs []activities.FindingRef) activities.ShardResult {
	res := activities.ShardResult{Analysed: analysed}
	if !in.CountsOnly {
		res.Findings = refs
		return res
	}
	for _, f := range refs {
		res.FindingCount++
		if f.New {
			res.NewFindings++
		}
		if res.BySeverity == nil {
			res.BySeverity = map[string]int{}
		}
		res.BySeverity[string(f.Severity)]++
	}
	if in.Dispatch {
		res.Remediations = len(refs)
	}
	return res
}

// pageOf returns the page of sorted ids after after, at most limit of them.
func pageOf(ids []string, after string, limit int) []string {
	i, found := slices.BinarySearch(ids, after)
	if found {
		i++
	}
	return ids[i:min(i+limit, len(ids))]
}
