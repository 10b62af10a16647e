package cli

import (
	"strings"

	"github.com/spf13/cobra"
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
			var out any
			if err := api.call(cmd.Context(), "POST", "/v1/admin/tenants", map[string]string{"id": args[0], "name": name}, &out); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out)
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
			body := map[string][]string{"sources": splitList(sources), "traffic_types": splitList(traffic)}
			var out any
			if err := api.call(cmd.Context(), "POST", "/v1/admin/tenants/"+tenantID+"/api-keys", body, &out); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out)
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
			return api.call(cmd.Context(), "DELETE", "/v1/admin/tenants/"+revokeTenant+"/api-keys/"+args[0], nil, nil)
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
