package lab

import (
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The lab's IAM Identity Center: the SSO OIDC API (RegisterClient,
// StartDeviceAuthorization, CreateToken with the device-code grant; RFC 8628
// and the SSO OIDC API reference) and the SSO portal's GetRoleCredentials
// (SSO Portal API reference), both REST-JSON and unsigned (the portal takes
// the bearer token in x-amz-sso_bearer_token). A device code is approved by
// opening its verificationUriComplete (what a user does in a browser) or by
// Lab.ApproveDevice. Role credentials are temporary keys the lab's SigV4
// check accepts until they expire. Refresh tokens are not issued: an expired
// token needs a new login, as with a legacy (sso_start_url) profile.

// DeviceInterval is the polling interval the lab's StartDeviceAuthorization
// returns (AWS returns 1 or 5 seconds).
const DeviceInterval = 1

type ssoState struct {
	mu       sync.Mutex
	clients  map[string]string // clientId → clientSecret
	devices  map[string]*device
	byCode   map[string]*device // userCode → device
	tokens   map[string]time.Time
	tokenTTL time.Duration
}

type device struct {
	clientID, userCode, startURL string
	expires                      time.Time
	approved                     bool
	lastPoll                     time.Time
}

// tempKey is a temporary access key (SSO role credentials, AssumeRole).
type tempKey struct {
	secret, token string
	expires       time.Time
	arn           string // the identity GetCallerIdentity reports
}

func randHex(n int) string {
	b := make([]byte, n)
	crand.Read(b)
	return hex.EncodeToString(b)
}

// issueKey mints temporary credentials valid for ttl.
func (l *Lab) issueKey(ttl time.Duration, arn string) (id string, k tempKey) {
	id = "ASIA" + strings.ToUpper(randHex(8))
	k = tempKey{secret: randHex(20), token: "devgate-lab-session-" + randHex(24), expires: l.now().Add(ttl), arn: arn}
	l.mu.Lock()
	if l.tempKeys == nil {
		l.tempKeys = map[string]tempKey{}
	}
	l.tempKeys[id] = k
	l.mu.Unlock()
	return id, k
}

func (l *Lab) tempKey(id string) (tempKey, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k, ok := l.tempKeys[id]
	return k, ok
}

// SetSSOTokenTTL sets the lifetime of the access tokens CreateToken issues
// from now on (default 8 hours, IAM Identity Center's default session).
func (l *Lab) SetSSOTokenTTL(d time.Duration) {
	l.sso.mu.Lock()
	l.sso.tokenTTL = d
	l.sso.mu.Unlock()
}

// ExpireSSOTokens ends every SSO access token issued so far, as when the
// user's session ends in IAM Identity Center: GetRoleCredentials answers
// UnauthorizedException.
func (l *Lab) ExpireSSOTokens() {
	l.sso.mu.Lock()
	for t := range l.sso.tokens {
		l.sso.tokens[t] = time.Time{}
	}
	l.sso.mu.Unlock()
}

// ApproveDevice approves the pending device authorization with userCode.
func (l *Lab) ApproveDevice(userCode string) error {
	l.sso.mu.Lock()
	defer l.sso.mu.Unlock()
	d, ok := l.sso.byCode[userCode]
	if !ok {
		return fmt.Errorf("lab: no device authorization with user code %q", userCode)
	}
	d.approved = true
	return nil
}

// oidcError writes SSO OIDC's error shape: {"error","error_description"} with __type.
func oidcError(w http.ResponseWriter, status int, typ, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-amzn-ErrorType", typ)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"__type": typ, "error": code, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// serveSSO answers the unsigned SSO OIDC and portal requests and the lab's
// approval page; it returns false for anything else.
func (l *Lab) serveSSO(w http.ResponseWriter, r *http.Request) bool {
	path := r.URL.Path
	switch {
	case r.Method == http.MethodPost && (path == "/client/register" || path == "/device_authorization" || path == "/token"):
	case r.Method == http.MethodGet && path == "/federation/credentials":
	case path == "/lab/sso/device":
	default:
		return false
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var in struct {
		ClientName   string   `json:"clientName"`
		ClientType   string   `json:"clientType"`
		Scopes       []string `json:"scopes"`
		ClientID     string   `json:"clientId"`
		ClientSecret string   `json:"clientSecret"`
		StartURL     string   `json:"startUrl"`
		GrantType    string   `json:"grantType"`
		DeviceCode   string   `json:"deviceCode"`
	}
	if r.Method == http.MethodPost && path != "/lab/sso/device" {
		if err := json.Unmarshal(body, &in); err != nil {
			oidcError(w, 400, "InvalidRequestException", "invalid_request", err.Error())
			return true
		}
	}
	s := &l.sso
	now := l.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch path {
	case "/client/register":
		if in.ClientName == "" || in.ClientType != "public" {
			oidcError(w, 400, "InvalidClientMetadataException", "invalid_client_metadata", "clientName is required and clientType must be public")
			return true
		}
		id, secret := "devgate-lab-client-"+randHex(8), randHex(32)
		s.clients[id] = secret
		l.front.count("RegisterClient", r.Header.Get("User-Agent"))
		writeJSON(w, map[string]any{"clientId": id, "clientSecret": secret, "clientIdIssuedAt": now.Unix(),
			"clientSecretExpiresAt": now.Add(90 * 24 * time.Hour).Unix()})
	case "/device_authorization":
		l.front.count("StartDeviceAuthorization", r.Header.Get("User-Agent"))
		if sec, ok := s.clients[in.ClientID]; !ok || sec != in.ClientSecret {
			oidcError(w, 401, "InvalidClientException", "invalid_client", "unknown client")
			return true
		}
		if in.StartURL == "" {
			oidcError(w, 400, "InvalidRequestException", "invalid_request", "startUrl is required")
			return true
		}
		code := strings.ToUpper(randHex(2) + "-" + randHex(2))
		d := &device{clientID: in.ClientID, userCode: code, startURL: in.StartURL, expires: now.Add(10 * time.Minute)}
		dc := randHex(24)
		s.devices[dc], s.byCode[code] = d, d
		verify := l.Endpoint() + "/lab/sso/device"
		writeJSON(w, map[string]any{"deviceCode": dc, "userCode": code, "verificationUri": verify,
			"verificationUriComplete": verify + "?user_code=" + code, "expiresIn": 600, "interval": DeviceInterval})
	case "/token":
		l.front.count("CreateToken", r.Header.Get("User-Agent"))
		if sec, ok := s.clients[in.ClientID]; !ok || sec != in.ClientSecret {
			oidcError(w, 401, "InvalidClientException", "invalid_client", "unknown client")
			return true
		}
		if in.GrantType != "urn:ietf:params:oauth:grant-type:device_code" {
			oidcError(w, 400, "UnsupportedGrantTypeException", "unsupported_grant_type", "only the device_code grant is served by the lab")
			return true
		}
		d, ok := s.devices[in.DeviceCode]
		switch {
		case !ok || d.clientID != in.ClientID:
			oidcError(w, 400, "InvalidGrantException", "invalid_grant", "unknown device code")
		case now.After(d.expires):
			oidcError(w, 400, "ExpiredTokenException", "expired_token", "the device code has expired")
		case !d.approved && !d.lastPoll.IsZero() && now.Sub(d.lastPoll) < DeviceInterval*time.Second*9/10:
			d.lastPoll = now
			oidcError(w, 400, "SlowDownException", "slow_down", "polled faster than the interval")
		case !d.approved:
			d.lastPoll = now
			oidcError(w, 400, "AuthorizationPendingException", "authorization_pending", "the user has not approved the device yet")
		default:
			delete(s.devices, in.DeviceCode)
			delete(s.byCode, d.userCode)
			tok := "devgate-lab-sso-" + randHex(24)
			s.tokens[tok] = now.Add(s.tokenTTL)
			writeJSON(w, map[string]any{"accessToken": tok, "tokenType": "Bearer", "expiresIn": int(s.tokenTTL.Seconds())})
		}
	case "/federation/credentials":
		l.front.count("GetRoleCredentials", r.Header.Get("User-Agent"))
		exp, ok := s.tokens[r.Header.Get("x-amz-sso_bearer_token")]
		if !ok || !now.Before(exp) {
			oidcError(w, 401, "UnauthorizedException", "", "Session token not found or invalid")
			return true
		}
		q := r.URL.Query()
		if q.Get("account_id") != l.account || q.Get("role_name") == "" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(403)
			json.NewEncoder(w).Encode(map[string]string{"__type": "ForbiddenException", "message": "No access"})
			return true
		}
		ttl := time.Hour
		if exp.Sub(now) < ttl {
			ttl = exp.Sub(now)
		}
		s.mu.Unlock()
		id, k := l.issueKey(ttl, "arn:aws:sts::"+l.account+":assumed-role/AWSReservedSSO_"+q.Get("role_name")+"/devgate-lab-user")
		s.mu.Lock()
		writeJSON(w, map[string]any{"roleCredentials": map[string]any{"accessKeyId": id, "secretAccessKey": k.secret,
			"sessionToken": k.token, "expiration": k.expires.UnixMilli()}})
	case "/lab/sso/device":
		// The page a user opens in a browser: opening it approves the code.
		code := r.URL.Query().Get("user_code")
		d, ok := s.byCode[code]
		if !ok {
			http.Error(w, "devgate-lab: no pending authorization with that code", http.StatusNotFound)
			return true
		}
		d.approved = true
		fmt.Fprintf(w, "devgate-lab: device %s approved; you may close this page\n", code)
	}
	return true
}
