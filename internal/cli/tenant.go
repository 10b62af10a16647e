package cli

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/bulwark-ledger/bulwark/client"
)

func newTenantCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tenant", Short: "Manage tenants (admin key)"}
	var api apiFlags
	var name string
	create := &cobra.Command{
		Use:   "create ID",
		Short: "Create a tenant",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return api.withClient(func(c *client.Client) error {
				out, err := c.CreateTenant(cmd.Context(), args[0], name)
				if err != nil {
					return err
				}
				return printJSON(cmd.OutOrStdout(), out)
			})
		},
	}
	api.add(create)
	create.Flags().StringVar(&name, "name", "", "display name")
	cmd.AddCommand(create)
	return cmd
}

func newAPIKeyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "apikey", Short: "Manage tenants' API keys (admin key)"}
	var api apiFlags
	var tenantID, sources, traffic string
	create := &cobra.Command{
		Use:   "create --tenant ID",
		Short: "Create an API key for a tenant; the key is printed once",
		RunE: func(cmd *cobra.Command, args []string) error {
			in := client.KeyInput{Sources: splitList(sources), TrafficTypes: splitList(traffic)}
			return api.withClient(func(c *client.Client) error {
				out, err := c.CreateKey(cmd.Context(), tenantID, in)
				if err != nil {
					return err
				}
				return printJSON(cmd.OutOrStdout(), out)
			})
		},
	}
	api.add(create)
	create.Flags().StringVar(&tenantID, "tenant", "", "tenant id (required)")
	create.Flags().StringVar(&sources, "sources", "", "sources the key may claim (comma-separated, e.g. app,web,partner)")
	create.Flags().StringVar(&traffic, "traffic-types", "", "traffic types the key may claim (comma-separated: normal,batch,crawler)")
	_ = create.MarkFlagRequired("tenant")
	var revokeTenant string
	revoke := &cobra.Command{
		Use:   "revoke KEY_ID --tenant ID",
		Short: "Revoke an API key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return api.withClient(func(c *client.Client) error {
				return c.RevokeKey(cmd.Context(), revokeTenant, args[0])
			})
		},
	}
	api.add(revoke)
	revoke.Flags().StringVar(&revokeTenant, "tenant", "", "tenant id (required)")
	_ = revoke.MarkFlagRequired("tenant")
	cmd.AddCommand(create, revoke)
	return cmd
}

func splitList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
