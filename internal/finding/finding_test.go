package finding

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseFingerprint(t *testing.T) {
	cases := []struct {
		in                   string
		box, rule, component string
		err                  string
	}{
		{in: "box-0042/capacity_forecast/pool/ssd_r6", box: "box-0042", rule: "capacity_forecast", component: "pool/ssd_r6"},
		{in: "b/port_errors/port/0:1:1", box: "b", rule: "port_errors", component: "port/0:1:1"},
		{in: "box/rule", err: `parse fingerprint "box/rule": want box/rule/component`},
		{in: "/rule/c", err: `parse fingerprint "/rule/c": want box/rule/component`},
		{in: "", err: `parse fingerprint "": want box/rule/component`},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			box, rule, comp, err := ParseFingerprint(tc.in)
			if tc.err != "" {
				require.EqualError(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, []string{tc.box, tc.rule, tc.component}, []string{box, rule, comp})
			require.Equal(t, tc.in, Fingerprint(box, rule, comp))
		})
	}
}

func TestSeverity(t *testing.T) {
	cases := []struct {
		in   string
		want Severity
		rank int
		err  string
	}{
		{"info", Info, 1, ""},
		{"WARNING", Warning, 2, ""},
		{"critical", Critical, 3, ""},
		{"fatal", "", 0, `unknown severity "fatal": allowed info, warning, critical`},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			s, err := ParseSeverity(tc.in)
			if tc.err != "" {
				require.EqualError(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, s)
			require.Equal(t, tc.rank, s.Rank())
		})
	}
	require.Equal(t, 0, Severity("bogus").Rank())
}
