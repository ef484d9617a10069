package lab

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base32"
	"encoding/binary"
	"encoding/xml"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/devgate/devgate/internal/lab/labapi"
)

// The lab's virtual MFA device: a TOTP authenticator (RFC 6238: HMAC-SHA1,
// 30-second steps, 6 digits, as IAM's virtual MFA devices) whose secret
// tests know, so they compute the codes a person would read off a phone.
// MFASecret is the device's base32 seed (what the QR code carries).
const MFASecret = "JBSWY3DPEHPK3PXPDEVGATELABMFA234"

// MFASerial is the ARN of the lab's MFA device (mfa_serial in a profile).
func (l *Lab) MFASerial() string { return "arn:aws:iam::" + l.account + ":mfa/devgate-lab" }

// TOTP returns the 6-digit code of the base32 secret at t (RFC 6238).
func TOTP(secret string, t time.Time) string {
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(secret))
	if err != nil {
		return ""
	}
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(t.Unix()/30))
	m := hmac.New(sha1.New, key)
	m.Write(msg[:])
	h := m.Sum(nil)
	off := h[len(h)-1] & 0x0f
	v := binary.BigEndian.Uint32(h[off:off+4]) & 0x7fffffff
	return fmt.Sprintf("%06d", v%1_000_000)
}

type assumeRoleResponse struct {
	XMLName      xml.Name `xml:"AssumeRoleResponse"`
	Xmlns        string   `xml:"xmlns,attr"`
	AccessKeyID  string   `xml:"AssumeRoleResult>Credentials>AccessKeyId"`
	Secret       string   `xml:"AssumeRoleResult>Credentials>SecretAccessKey"`
	SessionToken string   `xml:"AssumeRoleResult>Credentials>SessionToken"`
	Expiration   string   `xml:"AssumeRoleResult>Credentials>Expiration"`
	RoleUserArn  string   `xml:"AssumeRoleResult>AssumedRoleUser>Arn"`
	RoleUserID   string   `xml:"AssumeRoleResult>AssumedRoleUser>AssumedRoleId"`
	RequestID    string   `xml:"ResponseMetadata>RequestId"`
}

// assumeRole answers sts:AssumeRole (STS API reference): any role of the
// lab's account; with SerialNumber, TokenCode must be the lab MFA device's
// current code (or the previous or next step, the skew IAM tolerates), else
// AccessDenied as AWS answers it. Each code is accepted once. Without
// SerialNumber a role whose name ends in "-mfa" is denied, as a trust policy
// with aws:MultiFactorAuthPresent would.
func (l *Lab) assumeRole(ctx context.Context, form url.Values) (any, error) {
	arn, name := form.Get("RoleArn"), form.Get("RoleSessionName")
	if !strings.HasPrefix(arn, "arn:aws:iam::"+l.account+":role/") || name == "" {
		return nil, labapi.Errorf(400, "ValidationError", "RoleArn must be a role of account %s and RoleSessionName is required", l.account)
	}
	role := strings.TrimPrefix(arn, "arn:aws:iam::"+l.account+":role/")
	deny := labapi.Errorf(403, "AccessDenied", "User: %s is not authorized to perform: sts:AssumeRole on resource: %s", l.userArn(), arn)
	serial, code := form.Get("SerialNumber"), form.Get("TokenCode")
	if serial == "" && strings.HasSuffix(role, "-mfa") {
		return nil, deny
	}
	if serial != "" {
		now := l.now()
		ok := false
		for _, d := range []time.Duration{0, -30 * time.Second, 30 * time.Second} {
			ok = ok || (serial == l.MFASerial() && code != "" && code == TOTP(MFASecret, now.Add(d)))
		}
		l.mu.Lock()
		if l.usedCodes == nil {
			l.usedCodes = map[string]bool{}
		}
		if ok && l.usedCodes[code] {
			ok = false
		}
		if ok {
			l.usedCodes[code] = true
		}
		l.mu.Unlock()
		if !ok {
			return nil, labapi.Errorf(403, "AccessDenied", "MultiFactorAuthentication failed with invalid MFA one time pass code. ")
		}
	}
	ttl := time.Hour
	if s := form.Get("DurationSeconds"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 900 || n > 43200 {
			return nil, labapi.Errorf(400, "ValidationError", "DurationSeconds must be 900..43200")
		}
		ttl = time.Duration(n) * time.Second
	}
	id, k := l.issueKey(ttl, "arn:aws:sts::"+l.account+":assumed-role/"+role+"/"+name)
	return assumeRoleResponse{Xmlns: "https://sts.amazonaws.com/doc/2011-06-15/", AccessKeyID: id, Secret: k.secret,
		SessionToken: k.token, Expiration: k.expires.UTC().Format(time.RFC3339),
		RoleUserArn: "arn:aws:sts::" + l.account + ":assumed-role/" + role + "/" + name, RoleUserID: "AROADEVGATELAB:" + name,
		RequestID: labapi.RequestID(ctx)}, nil
}
