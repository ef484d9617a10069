// Package osuser picks the OS user to log in as on an EC2 instance: the
// instance's "devgate:user" tag, else the default user of the image it runs
// (from the AMI's name and description, and DescribeInstances'
// PlatformDetails), else nothing (the caller's default).
//
// The table follows AWS's "Manage system users on your Amazon EC2 Linux
// instance" (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/managing-users.html,
// "Default user names") and the publishers' AMI names (Canonical
// "ubuntu/images/…", Amazon "al2023-ami-…"/"amzn2-ami-…", Debian
// "debian-12-…", Red Hat "RHEL-9…", SUSE "suse-sles-…", "CentOS Stream …",
// "Fedora-Cloud-Base-…", "Rocky-9-…", "AlmaLinux OS …", Bitnami
// "bitnami-…", AWS Deep Learning AMIs "… (Ubuntu 22.04)" / "… (Amazon
// Linux 2)"). It does not call AWS.
package osuser

import "strings"

// Tag is the instance tag that names the OS user explicitly.
const Tag = "devgate:user"

// Rule maps a marker in the image's name or description (lowercased) to a user.
type Rule struct {
	Marker, User, Distribution string
}

// Rules are tried in order; the first marker found wins. Bitnami comes before
// Debian (its images are named "bitnami-…-debian-11"), Ubuntu before Amazon
// Linux (Deep Learning AMIs name both families in one catalogue).
var Rules = []Rule{
	{"bitnami", "bitnami", "Bitnami"},
	{"ubuntu", "ubuntu", "Ubuntu"},
	{"al2023", "ec2-user", "Amazon Linux 2023"},
	{"amzn", "ec2-user", "Amazon Linux"},
	{"amazon linux", "ec2-user", "Amazon Linux"},
	{"debian", "admin", "Debian"},
	{"rhel", "ec2-user", "Red Hat Enterprise Linux"},
	{"red hat", "ec2-user", "Red Hat Enterprise Linux"},
	{"suse", "ec2-user", "SUSE Linux Enterprise Server"},
	{"sles", "ec2-user", "SUSE Linux Enterprise Server"},
	{"centos", "centos", "CentOS"},
	{"fedora", "fedora", "Fedora"},
	{"rocky", "rocky", "Rocky Linux"},
	{"almalinux", "ec2-user", "AlmaLinux"},
	{"oracle", "ec2-user", "Oracle Linux"},
	{"freebsd", "ec2-user", "FreeBSD"},
	{"kali", "kali", "Kali Linux"},
}

// platformRules map DescribeInstances' PlatformDetails (billing product) to a user.
var platformRules = []Rule{
	{"red hat", "ec2-user", "Red Hat Enterprise Linux"},
	{"suse", "ec2-user", "SUSE Linux Enterprise Server"},
	{"ubuntu pro", "ubuntu", "Ubuntu Pro"},
}

// Image is what AWS says about an instance's image.
type Image struct {
	Name, Description string // DescribeImages
	PlatformDetails   string // DescribeInstances ("Linux/UNIX", "Red Hat Enterprise Linux", …)
}

// Pick returns the user for an instance with tags running img, and why ("tag
// devgate:user", "image: Ubuntu"); user is "" when nothing says.
func Pick(tags map[string]string, img Image) (user, why string) {
	if u := strings.TrimSpace(tags[Tag]); u != "" {
		return u, "tag " + Tag
	}
	text := strings.ToLower(img.Name + " " + img.Description)
	for _, r := range Rules {
		if strings.Contains(text, r.Marker) {
			return r.User, "image: " + r.Distribution
		}
	}
	pd := strings.ToLower(img.PlatformDetails)
	for _, r := range platformRules {
		if strings.Contains(pd, r.Marker) {
			return r.User, "platform: " + r.Distribution
		}
	}
	return "", ""
}
