package awsapi

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/osuser"
)

// InventoryItem is one live instance as setup sees it: its name, tags and
// the image it runs (for the OS user).
type InventoryItem struct {
	Name, ID, State  string
	Tags             map[string]string
	ImageID          string
	PlatformDetails  string // DescribeInstances' PlatformDetails
	ImageName        string // DescribeImages' Name ("" when the image could not be described)
	ImageDescription string
}

// Inventory lists the instances that are not terminated, with their images
// described (DescribeImages on the distinct ImageIds). Images that cannot be
// described (deregistered, shared no more, or ec2:DescribeImages denied) are
// left blank and reported in imagesErr; the listing itself still succeeds.
func Inventory(ctx context.Context, cfg aws.Config) (items []InventoryItem, imagesErr, err error) {
	client := ec2.NewFromConfig(cfg)
	p := ec2.NewDescribeInstancesPaginator(client, &ec2.DescribeInstancesInput{
		Filters: []ec2types.Filter{{Name: aws.String("instance-state-name"),
			Values: []string{"pending", "running", "stopping", "stopped"}}},
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, nil, Classify(err, "ec2:DescribeInstances")
		}
		for _, r := range page.Reservations {
			for _, in := range r.Instances {
				it := InventoryItem{ID: aws.ToString(in.InstanceId), Tags: map[string]string{},
					ImageID: aws.ToString(in.ImageId), PlatformDetails: aws.ToString(in.PlatformDetails)}
				if in.State != nil {
					it.State = string(in.State.Name)
				}
				for _, t := range in.Tags {
					it.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
				}
				it.Name = it.Tags["Name"]
				items = append(items, it)
			}
		}
	}
	seen := map[string]bool{}
	var ids []string
	for _, it := range items {
		if it.ImageID != "" && !seen[it.ImageID] {
			seen[it.ImageID] = true
			ids = append(ids, it.ImageID)
		}
	}
	images := map[string]ec2types.Image{}
	// One id at a time when a batch fails: one deregistered image must not hide the others.
	describe := func(batch []string) error {
		out, err := client.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: batch})
		if err != nil {
			return Classify(err, "ec2:DescribeImages")
		}
		for _, im := range out.Images {
			images[aws.ToString(im.ImageId)] = im
		}
		return nil
	}
	for start := 0; start < len(ids); start += 100 {
		batch := ids[start:min(start+100, len(ids))]
		if e := describe(batch); e != nil {
			imagesErr = e
			for _, id := range batch {
				_ = describe([]string{id})
			}
		}
	}
	for i, it := range items {
		if im, ok := images[it.ImageID]; ok {
			items[i].ImageName, items[i].ImageDescription = aws.ToString(im.Name), aws.ToString(im.Description)
		}
	}
	return items, imagesErr, nil
}

// ImageUser is the OS user instance id is meant to be logged in as, and
// why: its devgate:user tag, else the default user of the image it runs
// (osuser.Pick on DescribeImages' name and description and
// DescribeInstances' PlatformDetails). user is "" when nothing says (an
// image nobody can describe, an unknown distribution). Two calls
// (DescribeInstances, DescribeImages); errors are classified (Classify).
func ImageUser(ctx context.Context, cfg aws.Config, id string) (user, why string, err error) {
	client := ec2.NewFromConfig(cfg)
	out, err := client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return "", "", Classify(err, "ec2:DescribeInstances")
	}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			tags := map[string]string{}
			for _, t := range in.Tags {
				tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			img := osuser.Image{PlatformDetails: aws.ToString(in.PlatformDetails)}
			if in.ImageId != nil && tags[osuser.Tag] == "" {
				imgs, ierr := client.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{aws.ToString(in.ImageId)}})
				if ierr != nil {
					err = Classify(ierr, "ec2:DescribeImages") // the platform may still say
				} else if len(imgs.Images) == 1 {
					img.Name, img.Description = aws.ToString(imgs.Images[0].Name), aws.ToString(imgs.Images[0].Description)
				}
			}
			user, why = osuser.Pick(tags, img)
			if user != "" {
				err = nil
			}
			return user, why, err
		}
	}
	return "", "", exitcode.New(exitcode.NotFound, "", "instance %s not found", id)
}
