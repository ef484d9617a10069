package lab

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/devgate/devgate/internal/lab/labapi"
)

const ec2NS = "http://ec2.amazonaws.com/doc/2016-11-15/"

var (
	errIncorrectState = errors.New("IncorrectInstanceState")
	instanceIDRe      = regexp.MustCompile(`^i-[0-9a-f]{8}([0-9a-f]{9})?$`)
)

type notFoundError struct{ ids []string }

func (e *notFoundError) Error() string {
	return fmt.Sprintf("The instance ID '%s' does not exist", strings.Join(e.ids, "', '"))
}

func errNotFound(id string) error { return &notFoundError{[]string{id}} }

func ec2Err(err error) error {
	var nf *notFoundError
	switch {
	case errors.As(err, &nf):
		return labapi.Errorf(400, "InvalidInstanceID.NotFound", "%s", nf.Error())
	case errors.Is(err, errIncorrectState):
		msg := err.Error()
		msg = strings.TrimPrefix(msg, errIncorrectState.Error()+": ")
		return labapi.Errorf(400, "IncorrectInstanceState", "%s", strings.ToUpper(msg[:1])+msg[1:]+".")
	}
	return err
}

type ec2Tag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

type ec2State struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type ec2Instance struct {
	InstanceID       string   `xml:"instanceId"`
	ImageID          string   `xml:"imageId"`
	State            ec2State `xml:"instanceState"`
	PrivateDNSName   string   `xml:"privateDnsName"`
	InstanceType     string   `xml:"instanceType"`
	LaunchTime       string   `xml:"launchTime"`
	AvailabilityZone string   `xml:"placement>availabilityZone"`
	PrivateIP        string   `xml:"privateIpAddress"`
	Architecture     string   `xml:"architecture"`
	PlatformDetails  string   `xml:"platformDetails"`
	Tags             []ec2Tag `xml:"tagSet>item"`
}

type ec2Reservation struct {
	ReservationID string        `xml:"reservationId"`
	OwnerID       string        `xml:"ownerId"`
	Instances     []ec2Instance `xml:"instancesSet>item"`
}

type describeInstancesResponse struct {
	XMLName      xml.Name         `xml:"DescribeInstancesResponse"`
	Xmlns        string           `xml:"xmlns,attr"`
	RequestID    string           `xml:"requestId"`
	Reservations []ec2Reservation `xml:"reservationSet>item"`
}

type stateChange struct {
	InstanceID string   `xml:"instanceId"`
	Current    ec2State `xml:"currentState"`
	Previous   ec2State `xml:"previousState"`
}

type startInstancesResponse struct {
	XMLName   xml.Name      `xml:"StartInstancesResponse"`
	Xmlns     string        `xml:"xmlns,attr"`
	RequestID string        `xml:"requestId"`
	Changes   []stateChange `xml:"instancesSet>item"`
}

type stopInstancesResponse struct {
	XMLName   xml.Name      `xml:"StopInstancesResponse"`
	Xmlns     string        `xml:"xmlns,attr"`
	RequestID string        `xml:"requestId"`
	Changes   []stateChange `xml:"instancesSet>item"`
}

// listParam collects Prefix.1, Prefix.2, … in order.
func listParam(form url.Values, prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := form[prefix+"."+strconv.Itoa(i)]
		if !ok {
			return out
		}
		out = append(out, v...)
	}
}

type ec2Filter struct {
	name   string
	values []string
}

func filters(form url.Values) []ec2Filter {
	var fs []ec2Filter
	for i := 1; ; i++ {
		name := form.Get("Filter." + strconv.Itoa(i) + ".Name")
		if name == "" {
			return fs
		}
		fs = append(fs, ec2Filter{name, listParam(form, "Filter."+strconv.Itoa(i)+".Value")})
	}
}

func globMatch(pattern, s string) bool {
	re := "^" + strings.ReplaceAll(strings.ReplaceAll(regexp.QuoteMeta(pattern), `\*`, ".*"), `\?`, ".") + "$"
	ok, _ := regexp.MatchString(re, s)
	return ok
}

func anyMatch(vals []string, s string) bool {
	for _, v := range vals {
		if globMatch(v, s) {
			return true
		}
	}
	return false
}

func (l *Lab) dryRun(form url.Values, action string) error {
	if err := l.authorize("ec2:" + action); err != nil {
		return err
	}
	if form.Get("DryRun") == "true" {
		return labapi.Errorf(412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
	}
	return nil
}

func (l *Lab) ec2Instance(inst *instance) ec2Instance {
	l.fleet.mu.Lock()
	defer l.fleet.mu.Unlock()
	l.fleet.advance(inst)
	ip := inst.spec.PrivateIP
	e := ec2Instance{
		InstanceID: inst.spec.ID, ImageID: imageID(inst.spec.Image), State: ec2State{stateCodes[inst.state], inst.state},
		PrivateDNSName: "ip-" + strings.ReplaceAll(ip, ".", "-") + ".ec2.internal", InstanceType: inst.spec.Type,
		LaunchTime: inst.launch.UTC().Format("2006-01-02T15:04:05.000Z"), AvailabilityZone: l.region + "a",
		PrivateIP: ip, Architecture: "x86_64", PlatformDetails: inst.spec.Platform,
		Tags: []ec2Tag{{"Name", inst.spec.Name}},
	}
	keys := make([]string, 0, len(inst.spec.Tags))
	for k := range inst.spec.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e.Tags = append(e.Tags, ec2Tag{k, inst.spec.Tags[k]})
	}
	return e
}

func (l *Lab) describeInstances(ctx context.Context, form url.Values) (any, error) {
	if err := l.dryRun(form, "DescribeInstances"); err != nil {
		return nil, err
	}
	ids := listParam(form, "InstanceId")
	for _, id := range ids {
		if !instanceIDRe.MatchString(id) {
			return nil, labapi.Errorf(400, "InvalidInstanceID.Malformed", "Invalid id: \"%s\"", id)
		}
	}
	var missing []string
	for _, id := range ids {
		if _, ok := l.fleet.get(id); !ok {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return nil, labapi.Errorf(400, "InvalidInstanceID.NotFound", "%s", (&notFoundError{missing}).Error())
	}
	fs := filters(form)
	resp := describeInstancesResponse{Xmlns: ec2NS, RequestID: labapi.RequestID(ctx)}
	for _, inst := range l.fleet.snapshot() {
		if len(ids) > 0 && !contains(ids, inst.spec.ID) {
			continue
		}
		if inst.managedNode() {
			continue // a hybrid managed node is not an EC2 instance
		}
		e := l.ec2Instance(inst)
		ok := true
		for _, f := range fs {
			switch {
			case f.name == "instance-id":
				ok = ok && anyMatch(f.values, e.InstanceID)
			case f.name == "instance-state-name":
				ok = ok && anyMatch(f.values, e.State.Name)
			case f.name == "instance-type":
				ok = ok && anyMatch(f.values, e.InstanceType)
			case f.name == "private-ip-address":
				ok = ok && anyMatch(f.values, e.PrivateIP)
			case f.name == "private-dns-name":
				ok = ok && anyMatch(f.values, e.PrivateDNSName)
			case strings.HasPrefix(f.name, "tag:"):
				key := strings.TrimPrefix(f.name, "tag:")
				m := false
				for _, t := range e.Tags {
					if t.Key == key && anyMatch(f.values, t.Value) {
						m = true
					}
				}
				ok = ok && m
			case f.name == "tag-key":
				m := false
				for _, t := range e.Tags {
					if anyMatch(f.values, t.Key) {
						m = true
					}
				}
				ok = ok && m
			default:
				return nil, labapi.Errorf(400, "InvalidParameterValue", "The filter '%s' is invalid", f.name)
			}
		}
		if ok {
			resp.Reservations = append(resp.Reservations, ec2Reservation{
				ReservationID: "r-" + strings.TrimPrefix(inst.spec.ID, "i-"), OwnerID: l.account, Instances: []ec2Instance{e}})
		}
	}
	return resp, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (l *Lab) changeStates(form url.Values, action string, do func(string) (string, string, error)) ([]stateChange, error) {
	if err := l.dryRun(form, action); err != nil {
		return nil, err
	}
	ids := listParam(form, "InstanceId")
	if len(ids) == 0 {
		return nil, labapi.Errorf(400, "MissingParameter", "The request must contain the parameter InstanceId")
	}
	for _, id := range ids {
		if !instanceIDRe.MatchString(id) {
			return nil, labapi.Errorf(400, "InvalidInstanceID.Malformed", "Invalid id: \"%s\"", id)
		}
		if _, ok := l.fleet.get(id); !ok {
			return nil, ec2Err(errNotFound(id))
		}
	}
	var out []stateChange
	for _, id := range ids {
		prev, cur, err := do(id)
		if err != nil {
			return nil, ec2Err(err)
		}
		out = append(out, stateChange{id, ec2State{stateCodes[cur], cur}, ec2State{stateCodes[prev], prev}})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].InstanceID < out[j].InstanceID })
	return out, nil
}

func (l *Lab) startInstances(ctx context.Context, form url.Values) (any, error) {
	ch, err := l.changeStates(form, "StartInstances", l.fleet.start)
	if err != nil {
		return nil, err
	}
	return startInstancesResponse{Xmlns: ec2NS, RequestID: labapi.RequestID(ctx), Changes: ch}, nil
}

func (l *Lab) stopInstances(ctx context.Context, form url.Values) (any, error) {
	ch, err := l.changeStates(form, "StopInstances", l.fleet.stop)
	if err != nil {
		return nil, err
	}
	return stopInstancesResponse{Xmlns: ec2NS, RequestID: labapi.RequestID(ctx), Changes: ch}, nil
}

// --- DescribeImages ---

type ec2Image struct {
	ImageID         string `xml:"imageId"`
	Name            string `xml:"name"`
	Description     string `xml:"description,omitempty"`
	PlatformDetails string `xml:"platformDetails"`
	State           string `xml:"imageState"`
	Architecture    string `xml:"architecture"`
}

type describeImagesResponse struct {
	XMLName   xml.Name   `xml:"DescribeImagesResponse"`
	Xmlns     string     `xml:"xmlns,attr"`
	RequestID string     `xml:"requestId"`
	Images    []ec2Image `xml:"imagesSet>item"`
}

// describeImages answers for the images the lab's instances run (ImageId.N;
// no ids: all of them). As in EC2, an id the caller cannot see (here: no
// instance runs it) is InvalidAMIID.NotFound, a malformed one
// InvalidAMIID.Malformed.
func (l *Lab) describeImages(ctx context.Context, form url.Values) (any, error) {
	if err := l.dryRun(form, "DescribeImages"); err != nil {
		return nil, err
	}
	known := map[string]ec2Image{}
	for _, inst := range l.fleet.snapshot() {
		id := imageID(inst.spec.Image)
		known[id] = ec2Image{ImageID: id, Name: inst.spec.Image, Description: inst.spec.ImageDescription,
			PlatformDetails: inst.spec.Platform, State: "available", Architecture: "x86_64"}
	}
	ids := listParam(form, "ImageId")
	resp := describeImagesResponse{Xmlns: ec2NS, RequestID: labapi.RequestID(ctx)}
	if len(ids) == 0 {
		for _, im := range known {
			resp.Images = append(resp.Images, im)
		}
		sort.Slice(resp.Images, func(i, j int) bool { return resp.Images[i].ImageID < resp.Images[j].ImageID })
		return resp, nil
	}
	for _, id := range ids {
		if !strings.HasPrefix(id, "ami-") {
			return nil, labapi.Errorf(400, "InvalidAMIID.Malformed", "Invalid id: \"%s\" (expecting \"ami-...\")", id)
		}
		im, ok := known[id]
		if !ok {
			return nil, labapi.Errorf(400, "InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
		}
		resp.Images = append(resp.Images, im)
	}
	return resp, nil
}

func (l *Lab) registerEC2(r *labapi.Registry) {
	r.Query("ec2", "DescribeImages", l.describeImages)
	r.Query("ec2", "DescribeInstances", l.describeInstances)
	r.Query("ec2", "StartInstances", l.startInstances)
	r.Query("ec2", "StopInstances", l.stopInstances)
}

// --- STS ---

type getCallerIdentityResponse struct {
	XMLName   xml.Name `xml:"GetCallerIdentityResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	Arn       string   `xml:"GetCallerIdentityResult>Arn"`
	UserID    string   `xml:"GetCallerIdentityResult>UserId"`
	Account   string   `xml:"GetCallerIdentityResult>Account"`
	RequestID string   `xml:"ResponseMetadata>RequestId"`
}

func (l *Lab) registerSTS(r *labapi.Registry) {
	r.Query("sts", "GetCallerIdentity", func(ctx context.Context, form url.Values) (any, error) {
		arn := l.userArn()
		if k, ok := l.tempKey(labapi.Caller(ctx)); ok && k.arn != "" {
			arn = k.arn
		}
		return getCallerIdentityResponse{Xmlns: "https://sts.amazonaws.com/doc/2011-06-15/",
			Arn: arn, UserID: "AIDADEVGATELAB0000001", Account: l.account, RequestID: labapi.RequestID(ctx)}, nil
	})
	r.Query("sts", "AssumeRole", l.assumeRole)
}

func (l *Lab) userArn() string { return "arn:aws:iam::" + l.account + ":user/devgate-lab" }

// keep time imported for ec2Instance formatting helpers.
var _ = time.RFC3339
