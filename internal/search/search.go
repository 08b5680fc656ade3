// Package search holds sanwatch's custom search attributes: the names the
// Temporal UI and `temporal workflow list --query` filter remediations and
// scans by, and their registration on a namespace. No email address or other
// personal data ever goes into one: they are stored and indexed in the clear.
package search

import (
	"context"
	"fmt"
	"sort"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// The search attributes sanwatch sets.
var (
	// Box is the box a remediation is about, or the box a scan is limited to.
	Box = temporal.NewSearchAttributeKeyKeyword("SanwatchBox")
	// Site is the box's site (remediations) or the site a scan is limited to.
	Site = temporal.NewSearchAttributeKeyKeyword("SanwatchSite")
	// Rule is the rule of a remediation's finding.
	Rule = temporal.NewSearchAttributeKeyKeyword("SanwatchRule")
	// Severity is the finding's current severity: info, warning or critical.
	Severity = temporal.NewSearchAttributeKeyKeyword("SanwatchSeverity")
	// Phase is the remediation's phase: notifying, waiting, acknowledged,
	// clearing, undeliverable or resolved.
	Phase = temporal.NewSearchAttributeKeyKeyword("SanwatchPhase")
	// Acked is true once someone acknowledged the problem.
	Acked = temporal.NewSearchAttributeKeyBool("SanwatchAcked")
)

// Attributes lists every sanwatch search attribute with its indexed type, in
// name order: what Register adds and what `temporal server start-dev
// --search-attribute` needs.
func Attributes() map[string]enumspb.IndexedValueType {
	return map[string]enumspb.IndexedValueType{
		Box.GetName():      enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		Site.GetName():     enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		Rule.GetName():     enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		Severity.GetName(): enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		Phase.GetName():    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		Acked.GetName():    enumspb.INDEXED_VALUE_TYPE_BOOL,
	}
}

// DevServerFlags returns the `--search-attribute Name=Type` arguments of
// `temporal server start-dev` that register every attribute.
func DevServerFlags() []string {
	var names []string
	for n := range Attributes() {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []string
	for _, n := range names {
		typ := "Keyword"
		if Attributes()[n] == enumspb.INDEXED_VALUE_TYPE_BOOL {
			typ = "Bool"
		}
		out = append(out, "--search-attribute", n+"="+typ)
	}
	return out
}

// Register adds the attributes the namespace lacks. It is idempotent; an
// attribute registered with another type is an error that names it.
func Register(ctx context.Context, c client.Client, namespace string) error {
	op := c.OperatorService()
	have, err := op.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes of namespace %q: %w", namespace, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	want := Attributes()
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names) // the first conflict named is always the same one
	for _, name := range names {
		typ := want[name]
		got, ok := have.GetCustomAttributes()[name]
		if !ok {
			missing[name] = typ
			continue
		}
		if got != typ {
			return fmt.Errorf("search attribute %s is registered in namespace %q as %s, sanwatch needs %s", name, namespace, got, typ)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = op.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing})
	if err != nil {
		return fmt.Errorf("add search attributes to namespace %q: %w", namespace, err)
	}
	return nil
}
