package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sanwatch/sanwatch/internal/receiver"
	"github.com/sanwatch/sanwatch/internal/store"
)

func (c *cli) tokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Make, revoke and list the bearer tokens boxes post telemetry with",
		Long: `A token authenticates one box to the receiver (starter receive) and lets it post only
samples of that box. The store keeps only the token's sha256: the token is printed once, when
it is made.`,
	}
	cmd.AddCommand(c.tokenCreateCmd(), c.tokenRevokeCmd(), c.tokenListCmd())
	return cmd
}

// intakeStore opens the store as the keeper of tokens; the caller closes it.
func (c *cli) intakeStore(cmd *cobra.Command) (store.Store, store.IntakeStore, error) {
	st, err := c.openStore(cmd.Context())
	if err != nil {
		return nil, nil, err
	}
	is, err := store.AsIntakeStore(st)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, is, nil
}

func (c *cli) tokenCreateCmd() *cobra.Command {
	var box, label string
	var expires time.Duration
	cmd := &cobra.Command{
		Use:   "create --box ID",
		Short: "Make a token for a box and print it once (on stdout; its id and expiry on stderr)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if box == "" {
				return errors.New("token create: --box is required")
			}
			if expires < 0 {
				return fmt.Errorf("token create: --expires %s: must not be negative (0: never)", expires)
			}
			st, is, err := c.intakeStore(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			tok, rec, err := receiver.NewToken(box, label, expires, time.Now())
			if err != nil {
				return err
			}
			if err := is.PutToken(cmd.Context(), rec); err != nil {
				return err
			}
			until := "never expires"
			if !rec.ExpiresAt.IsZero() {
				until = "expires " + rec.ExpiresAt.Format(time.RFC3339)
			}
			fmt.Fprintf(c.stderr, "token %s for box %s (%s); it is shown once: keep it on the box\n", rec.ID, box, until)
			_, err = fmt.Fprintln(c.stdout, tok)
			return err
		},
	}
	cmd.Flags().StringVar(&box, "box", "", "the box the token posts for (its id)")
	cmd.Flags().StringVar(&label, "label", "", "a note shown by token list (never a secret)")
	cmd.Flags().DurationVar(&expires, "expires", 0, "how long the token works, e.g. 720h (0: until revoked)")
	return cmd
}

func (c *cli) tokenRevokeCmd() *cobra.Command {
	var box, id string
	cmd := &cobra.Command{
		Use:   "revoke --box ID | --id TOKEN_ID",
		Short: "Revoke one token (--id) or every token of a box (--box): posts with them get 401",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (box == "") == (id == "") {
				return errors.New("token revoke: give --box or --id, not both")
			}
			st, is, err := c.intakeStore(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			n, err := is.RevokeTokens(cmd.Context(), box, id, time.Now())
			if err != nil {
				return err
			}
			if n == 0 && id != "" {
				return fmt.Errorf("token revoke: no token %s that is not revoked already", id)
			}
			_, err = fmt.Fprintf(c.stdout, "revoked %d token(s)\n", n)
			return err
		},
	}
	cmd.Flags().StringVar(&box, "box", "", "revoke every token of this box")
	cmd.Flags().StringVar(&id, "id", "", "revoke the token with this id (see token list)")
	return cmd
}

func (c *cli) tokenListCmd() *cobra.Command {
	var box string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [--box ID]",
		Short: "List tokens: ids, boxes, labels, when made, expiring and revoked (never the tokens or their hashes)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, is, err := c.intakeStore(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			toks, err := is.Tokens(cmd.Context(), box)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(c.stdout)
				for _, t := range toks {
					if err := enc.Encode(t); err != nil {
						return err
					}
				}
				return nil
			}
			when := func(t time.Time, zero string) string {
				if t.IsZero() {
					return zero
				}
				return t.Local().Format(time.RFC3339)
			}
			now := time.Now()
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tBOX\tSTATE\tCREATED\tEXPIRES\tREVOKED\tLABEL")
			for _, t := range toks {
				state := "valid"
				switch {
				case !t.RevokedAt.IsZero():
					state = "revoked"
				case !t.Valid(now):
					state = "expired"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Box, state,
					when(t.CreatedAt, "-"), when(t.ExpiresAt, "never"), when(t.RevokedAt, "-"), t.Label)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&box, "box", "", "only this box's tokens")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per token")
	return cmd
}
