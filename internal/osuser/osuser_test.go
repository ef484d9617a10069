package osuser

import "testing"

func TestPick(t *testing.T) {
	cases := []struct {
		tags      map[string]string
		img       Image
		user, why string
	}{
		{map[string]string{Tag: "alice"}, Image{Name: "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20240207"}, "alice", "tag devgate:user"},
		{nil, Image{Name: "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20240423"}, "ubuntu", "image: Ubuntu"},
		{nil, Image{Name: "Deep Learning OSS Nvidia Driver AMI GPU PyTorch 2.3.0 (Ubuntu 20.04) 20240611"}, "ubuntu", "image: Ubuntu"},
		{nil, Image{Name: "Deep Learning OSS Nvidia Driver AMI GPU PyTorch 2.3.0 (Amazon Linux 2) 20240611"}, "ec2-user", "image: Amazon Linux"},
		{nil, Image{Name: "al2023-ami-2023.6.20241121.0-kernel-6.1-x86_64"}, "ec2-user", "image: Amazon Linux 2023"},
		{nil, Image{Name: "amzn2-ami-kernel-5.10-hvm-2.0.20240131.0-x86_64-gp2"}, "ec2-user", "image: Amazon Linux"},
		{nil, Image{Name: "debian-12-amd64-20240201-1644"}, "admin", "image: Debian"},
		{nil, Image{Name: "bitnami-wordpress-6.4.3-0-r05-linux-debian-11-x86_64-hvm-ebs"}, "bitnami", "image: Bitnami"},
		{nil, Image{Name: "RHEL-9.3.0_HVM-20240117-x86_64-49-Hourly2-GP3"}, "ec2-user", "image: Red Hat Enterprise Linux"},
		{nil, Image{Name: "suse-sles-15-sp5-v20240129-hvm-ssd-x86_64"}, "ec2-user", "image: SUSE Linux Enterprise Server"},
		{nil, Image{Name: "CentOS Stream 9 x86_64 20240129"}, "centos", "image: CentOS"},
		{nil, Image{Name: "Fedora-Cloud-Base-39-1.5.x86_64-hvm-us-east-1-gp3-0"}, "fedora", "image: Fedora"},
		{nil, Image{Name: "Rocky-9-EC2-Base-9.3-20231113.0.x86_64"}, "rocky", "image: Rocky Linux"},
		{nil, Image{Name: "my-golden-image", Description: "built from Ubuntu 22.04"}, "ubuntu", "image: Ubuntu"},
		{nil, Image{Name: "my-golden-image", PlatformDetails: "Red Hat Enterprise Linux"}, "ec2-user", "platform: Red Hat Enterprise Linux"},
		{nil, Image{Name: "my-golden-image", PlatformDetails: "Linux/UNIX"}, "", ""},
		{map[string]string{Tag: "  "}, Image{}, "", ""},
	}
	for _, c := range cases {
		u, why := Pick(c.tags, c.img)
		if u != c.user || why != c.why {
			t.Errorf("Pick(%v, %+v) = %q, %q; want %q, %q", c.tags, c.img, u, why, c.user, c.why)
		}
	}
}
