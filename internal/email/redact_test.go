package email

import "testing"

func TestRedactAddresses(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", ""},
		{"dial tcp 127.0.0.1:25: connect: connection refused", "dial tcp 127.0.0.1:25: connect: connection refused"},
		{`550 5.1.1 <jane.doe+san@example.com>: no such mailbox`, `550 5.1.1 <<address>>: no such mailbox`},
		{"affected recipient(s): <a@b.co>, <c@d.example>", "affected recipient(s): <<address>>, <<address>>"},
		{"message ID: <ab12.0.notify@sanwatch.test>", "message ID: <<address>>"},
	}
	for _, c := range cases {
		if got := RedactAddresses(c.in); got != c.want {
			t.Errorf("RedactAddresses(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
