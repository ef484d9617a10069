package lab

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
)

// AdminHeader carries the admin token on requests to the lab's /_lab/ endpoint.
const AdminHeader = "X-Devgate-Lab-Admin"

func randomToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// AdminToken is the secret the /_lab/ endpoint requires in AdminHeader
// (labcli writes it to D/admin-token, 0600). It is not an AWS credential.
func (l *Lab) AdminToken() string { return l.admin }

// adminHandler serves the lab's own controls, which no AWS API has:
//
//	GET  /_lab/vpn               → VPNStatus as JSON
//	POST /_lab/vpn?state=S       → moves the VPN model to S (up, refuse, silence), then VPNStatus
type adminHandler struct{ l *Lab }

func (h *adminHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if subtle.ConstantTimeCompare([]byte(r.Header.Get(AdminHeader)), []byte(h.l.admin)) != 1 {
		http.Error(w, "missing or wrong "+AdminHeader, http.StatusForbidden)
		return
	}
	switch {
	case r.URL.Path == "/_lab/vpn" && r.Method == http.MethodGet:
	case r.URL.Path == "/_lab/vpn" && r.Method == http.MethodPost:
		if err := h.l.SetVPN(r.URL.Query().Get("state")); err != nil {
			code := http.StatusBadRequest
			if errors.Is(err, ErrVPNPort22) {
				code = http.StatusForbidden
			}
			http.Error(w, err.Error(), code)
			return
		}
	default:
		http.Error(w, "unknown admin call", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(h.l.VPN())
}
