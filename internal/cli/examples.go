package cli

// examples are the Example sections of the commands' help, by command path
// without "devgate ". A command file may set its own Example instead;
// conventions fills in the rest from here. Every command has one (a test
// walks the tree). connect sets its own (connect.go): the one-liner that
// needs no setup and the line for ~/.ssh/config.
var examples = map[string]string{
	"setup": `  devgate setup                     # shows the diff, asks, writes
  devgate setup --dry-run           # only shows the diff
  devgate setup --profile dev --region eu-west-1 --user ubuntu --yes`,
	"vscode": `  devgate vscode            # shows the change to settings.json
  devgate vscode --write    # applies it (after a backup)`,
	"ls": `  devgate ls
  devgate ls --all --json | jq -r '.[].id'`,
	"start": `  devgate start gpu1
  devgate start i-0123456789abcdef0 --wait`,
	"stop": `  devgate stop gpu1
  devgate stop devbox-gpu1 --wait`,
	"doctor": `  devgate doctor
  devgate doctor gpu1
  devgate doctor gpu1 --json`,
	"forward": `  devgate forward gpu1 8888 6006               # Jupyter and TensorBoard on the same local ports
  devgate forward gpu1 18888:8888              # local 18888 -> the instance's 8888
  devgate forward gpu1 5432:db.internal:5432   # a host the instance reaches
  devgate forward --auto gpu1 8888             # a free local port if 8888 is taken`,
	"cp": `  devgate cp gpu1:/models/m.pt .
  devgate cp -r ./data gpu1:/scratch/
  devgate cp -j 16 gpu1:/results/run.tar /tmp/
  devgate cp --via s3 --bucket my-relay gpu1:/models/m.pt .`,
	"bench": `  devgate bench gpu1                        # both paths, the targets beside each figure
  devgate bench gpu1 --path ssm --size 256MiB --runs 10
  devgate bench gpu1 --path all --json > bench.json`,
	"version": `  devgate version
  devgate --version`,
	"completion": `  source <(devgate completion bash)
  devgate completion zsh > "${fpath[1]}/_devgate"
  devgate completion fish > ~/.config/fish/completions/devgate.fish
  devgate completion powershell | Out-String | Invoke-Expression`,
	"completion bash":       `  source <(devgate completion bash)`,
	"completion zsh":        `  devgate completion zsh > "${fpath[1]}/_devgate"`,
	"completion fish":       `  devgate completion fish > ~/.config/fish/completions/devgate.fish`,
	"completion powershell": `  devgate completion powershell | Out-String | Invoke-Expression`,
	"prefs": `  devgate prefs show
  devgate prefs set idleSessionTimeout=30 --dry-run`,
	"prefs show": `  devgate prefs show --region eu-west-1`,
	"prefs set": `  devgate prefs set idleSessionTimeout=30 maxSessionDuration=480
  devgate prefs set shellProfile.linux='exec bash -l' --yes`,
	"prefs apply": `  devgate prefs apply prefs.json --dry-run
  devgate prefs apply - --yes < prefs.json`,
	"vpn": `  devgate vpn pki init --server-name vpn.example.com
  devgate vpn pki issue alice
  devgate vpn import
  devgate vpn profile alice --endpoint cvpn-endpoint-0123456789abcdef0`,
	"vpn pki": `  devgate vpn pki init --server-name vpn.example.com
  devgate vpn pki list`,
	"vpn pki init":   `  DEVGATE_CA_PASSPHRASE=… devgate vpn pki init --server-name vpn.example.com --days 825`,
	"vpn pki issue":  `  devgate vpn pki issue alice --days 365`,
	"vpn pki renew":  `  devgate vpn pki renew alice`,
	"vpn pki revoke": `  devgate vpn pki revoke alice --reason keyCompromise`,
	"vpn pki crl":    `  devgate vpn pki crl --days 180`,
	"vpn pki list":   `  devgate vpn pki list`,
	"vpn profile": `  devgate vpn profile alice --endpoint cvpn-endpoint-0123456789abcdef0
  devgate vpn profile alice --config exported.ovpn`,
	"vpn import": `  devgate vpn import
  devgate vpn import --endpoint cvpn-endpoint-0123456789abcdef0`,
	"help": `  devgate help cp`,
	"shell": `  devgate shell gpu1
  devgate shell gpu1 --document AWS-StartInteractiveCommand --parameters command='nvidia-smi -l 5'`,
	"exec": `  devgate exec gpu1 -- nvidia-smi
  devgate exec gpu1 -- sh -c 'df -h /scratch'; echo "exit status $?"`,
	"login": `  devgate login --profile sso-dev
  devgate login --profile mfa-role --no-browser`,
}
