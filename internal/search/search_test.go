package search_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/server/temporaltest"

	"github.com/sanwatch/sanwatch/internal/search"
)

// TestRegister registers sanwatch's attributes on a real (in-process)
// Temporal server whose namespace already holds some attributes.
func TestRegister(t *testing.T) {
	tests := []struct {
		name    string
		before  map[string]enumspb.IndexedValueType // registered before Register runs
		wantErr string                              // %q is the namespace
	}{
		{name: "fresh namespace"},
		{name: "some already there", before: map[string]enumspb.IndexedValueType{
			"SanwatchBox": enumspb.INDEXED_VALUE_TYPE_KEYWORD, "SanwatchAcked": enumspb.INDEXED_VALUE_TYPE_BOOL,
		}},
		{name: "someone else's attributes are left alone", before: map[string]enumspb.IndexedValueType{
			"CustomerId": enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		}},
		{
			name:    "an attribute of another type",
			before:  map[string]enumspb.IndexedValueType{"SanwatchAcked": enumspb.INDEXED_VALUE_TYPE_KEYWORD},
			wantErr: `search attribute SanwatchAcked is registered in namespace %q as Keyword, sanwatch needs Bool`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := temporaltest.NewServer(temporaltest.WithT(t))
			c, ns := ts.GetDefaultClient(), ts.GetDefaultNamespace()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if len(tc.before) > 0 {
				_, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
					Namespace: ns, SearchAttributes: tc.before,
				})
				require.NoError(t, err)
			}

			err := search.Register(ctx, c, ns)
			if tc.wantErr != "" {
				require.EqualError(t, err, fmt.Sprintf(tc.wantErr, ns))
				return
			}
			require.NoError(t, err)
			require.NoError(t, search.Register(ctx, c, ns), "registering again changes nothing")

			got, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
			require.NoError(t, err)
			for name, typ := range search.Attributes() {
				require.Equal(t, typ, got.GetCustomAttributes()[name], name)
			}
			for name, typ := range tc.before {
				require.Equal(t, typ, got.GetCustomAttributes()[name], name)
			}
		})
	}
}

// TestDevServerFlags checks the flags of `temporal server start-dev`.
func TestDevServerFlags(t *testing.T) {
	require.Equal(t, []string{
		"--search-attribute", "SanwatchAcked=Bool",
		"--search-attribute", "SanwatchBox=Keyword",
		"--search-attribute", "SanwatchPhase=Keyword",
		"--search-attribute", "SanwatchRule=Keyword",
		"--search-attribute", "SanwatchSeverity=Keyword",
		"--search-attribute", "SanwatchSite=Keyword",
	}, search.DevServerFlags())
}
