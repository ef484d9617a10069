package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/devgate/devgate/internal/awsapi"
	"github.com/devgate/devgate/internal/creds"
)

func init() { register(newLoginCommand) }

func newLoginCommand(io IO) *cobra.Command {
	var profile string
	var noBrowser bool
	cmd := &cobra.Command{
		Use:   "login [--profile P]",
		Short: "Sign in to IAM Identity Center (SSO), or cache an MFA role's credentials",
		Long: `For an IAM Identity Center profile (sso_session, or sso_start_url and sso_region), runs the
device authorization flow: prints a URL and a code, opens a browser where one is available, waits
for the approval and writes the token to ~/.aws/sso/cache, where the AWS CLI and the SDKs find it.
For a role with mfa_serial, asks for the MFA code on the terminal and caches the role's
credentials (~/.aws/cli/cache, 0600) so that later connects (VSCode's included) need no prompt.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			home, _, err := homeDir()
			if err != nil {
				return err
			}
			res, err := creds.Login(cmd.Context(), creds.LoginOptions{Profile: profile, Home: home,
				AWS: []awsapi.Option{awsapi.WithAppID(Version)}, TTY: "/dev/tty",
				Show: func(d creds.DeviceAuth) {
					fmt.Fprintf(io.ErrOut, "devgate: to sign in, open %s\ndevgate: and confirm the code %s\n", d.VerificationURI, d.UserCode)
					if !noBrowser && creds.OpenBrowser(d.VerificationURIComplete) {
						fmt.Fprintln(io.ErrOut, "devgate: (a browser was opened at that page)")
					}
					fmt.Fprintln(io.ErrOut, "devgate: waiting for the approval…")
				}})
			if err != nil {
				return err
			}
			fmt.Fprintf(io.ErrOut, "devgate: signed in: profile %s until %s (%s)\n", res.Profile, res.Expires.Local().Format("2006-01-02 15:04 MST"), res.CacheFile)
			return nil
		},
	}
	cmd.Flags().StringVar(&profile, "profile", "", "AWS profile to sign in (default $AWS_PROFILE, else default)")
	cmd.Flags().BoolVar(&noBrowser, "no-browser", false, "print the URL only; do not open a browser")
	return cmd
}
